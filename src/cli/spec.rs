//! `candybar spec …`: the specs a feature conversation produces — list, show, diff, new, revise,
//! approve, reject, and file as a GitHub issue — for scripts and tests. Every change is also
//! said on the bus (`sentra.spec.*`, `sentra.issue.created`) through the sessions' outbox, so a
//! broker that is down loses nothing.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use candybar_sessions::outbox::keep_and_send;
use candybar_sessions::store::Outgoing;
use candybar_specs::events;
use candybar_specs::github::{self, GitHub, GitHubError};
use candybar_specs::store::{FiledIssue, Meta, SpecError, SpecStore, Status};
use clap::{Args, Subcommand, ValueEnum};

use super::{Settings, SourceArgs};

#[derive(Subcommand, Debug)]
pub enum SpecCommand {
    /// The specs, newest first: id, status, versions, project, title.
    List(ListArgs),
    /// A spec's text (the newest version, or `--version N`), or its meta.json (`--meta`).
    Show(ShowArgs),
    /// What changed between two versions (unified diff).
    Diff(DiffArgs),
    /// A new spec from a Markdown file (`--from FILE`, `-` for stdin); prints its id.
    New(NewArgs),
    /// A new version of a spec from a Markdown file (`--from FILE`, `-` for stdin); the spec is
    /// a draft again.
    Revise(ReviseArgs),
    /// Approve a spec's newest version (or `--version N`).
    Approve(ApproveArgs),
    /// Reject a spec (it stays on disk).
    Reject(IdArgs),
    /// File an approved spec as a GitHub issue labelled `ai-feature` (`--dry-run`: print the
    /// requests instead). Prints the issue's URL.
    Issue(IssueArgs),
}

#[derive(Args, Debug, Clone)]
pub struct PlaceArgs {
    /// The project directory whose `.sentra/specs` holds the specs [default: `[specs] dir`, else
    /// the current directory; env: `CANDYBAR_SPECS_DIR`]
    #[arg(long, value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Default)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only specs with this status (draft, approved, rejected, filed)
    #[arg(long)]
    status: Option<String>,
    /// Only this project's specs
    #[arg(long)]
    project: Option<String>,
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
    #[command(flatten)]
    place: PlaceArgs,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The spec's id (or its start)
    id: String,
    #[command(flatten)]
    place: PlaceArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    spec: IdArgs,
    /// Which version [default: the newest]
    #[arg(long, value_name = "N")]
    version: Option<u32>,
    /// Print meta.json instead of the text
    #[arg(long)]
    meta: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    spec: IdArgs,
    /// The older version
    #[arg(value_name = "FROM")]
    older: u32,
    /// The newer version [default: the newest]
    #[arg(value_name = "TO")]
    newer: Option<u32>,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The project it belongs to [default: `[specs] project`, else the directory's name]
    #[arg(long)]
    project: Option<String>,
    /// The Markdown file (`-`: standard input); `--from FILE` says the same
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    place: PlaceArgs,
}

#[derive(Args, Debug)]
pub struct ReviseArgs {
    #[command(flatten)]
    spec: IdArgs,
    /// The Markdown file (`-`: standard input); `--from FILE` says the same
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    #[command(flatten)]
    spec: IdArgs,
    /// Which version [default: the newest]
    #[arg(long, value_name = "N")]
    version: Option<u32>,
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    #[command(flatten)]
    spec: IdArgs,
    /// The repository, `owner/name` [default: `[github] repo`; env: `CANDYBAR_GITHUB_REPO`]
    #[arg(long, value_name = "OWNER/NAME")]
    repo: Option<String>,
    /// Print the requests that would be sent (the token masked) and send nothing
    #[arg(long)]
    dry_run: bool,
}

/// The project directory: the flag, else `[specs] dir`, else the current directory.
pub(crate) fn project_dir(flag: Option<&PathBuf>, settings: &Settings) -> anyhow::Result<PathBuf> {
    match flag.cloned().or_else(|| settings.file.specs.dir.clone()) {
        Some(d) => Ok(d),
        None => std::env::current_dir().context("no current directory: give --dir DIR"),
    }
}

/// A new spec's project: the flag, else `[specs] project`, else the directory's name.
pub(crate) fn project_name(flag: Option<&str>, dir: &Path, settings: &Settings) -> String {
    flag.map(str::to_owned)
        .or_else(|| settings.file.specs.project.clone())
        .or_else(|| {
            std::fs::canonicalize(dir)
                .ok()?
                .file_name()?
                .to_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "default".to_owned())
}

/// The Markdown file of `new`/`revise`: `--file`, else `--from` (a global flag, which for the
/// bus says where a stream is read from; here it names the file, as the issue's command line has
/// it).
fn input_path(file: Option<&PathBuf>, source: &SourceArgs) -> anyhow::Result<PathBuf> {
    file.cloned()
        .or_else(|| source.from.clone().map(PathBuf::from))
        .context("give the spec's Markdown: --from FILE (or --from - for standard input)")
}

fn read_input(from: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    if from == Path::new("-") {
        std::io::stdin()
            .take(candybar_specs::store::MAX_SPEC_BYTES as u64 + 1)
            .read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(from)
            .with_context(|| format!("cannot read {}", from.display()))?
            .take(candybar_specs::store::MAX_SPEC_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", from.display()))?;
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{} is not text (UTF-8): a spec is Markdown", from.display()))
}

/// Queues the events in the sessions' outbox and sends them when a broker is configured; what
/// cannot be sent waits there for the next command (or the window).
pub(crate) async fn announce(events: Vec<Outgoing>, source: &SourceArgs, settings: &Settings) {
    let dir = match super::session::sessions_dir(None, &settings.file.sessions) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("candybar: the spec's events are not kept: {e}");
            return;
        }
    };
    let url = source.amqp_url(settings);
    let exchange = source.exchange(settings);
    let broker = url.as_ref().map(|u| (u.expose(), exchange.as_str()));
    match keep_and_send(&dir.join("sessions.sqlite3"), &events, broker).await {
        Ok(Some(r)) if r.pending > 0 => eprintln!(
            "candybar: {} event(s) wait for the broker ({}); they are sent by the next command",
            r.pending,
            candybar_core::redact::mask_secrets_in(r.error.as_deref().unwrap_or("not sent yet"))
        ),
        Ok(_) => {}
        Err(e) => eprintln!("candybar: the spec's events are not kept: {e}"),
    }
}

/// A spec error as the person reads it; exit code 2.
fn refused(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("candybar: {e}");
    ExitCode::from(2)
}

pub async fn run(cmd: SpecCommand, source: &SourceArgs) -> anyhow::Result<ExitCode> {
    let settings = source.settings()?;
    let place = match &cmd {
        SpecCommand::List(a) => &a.place,
        SpecCommand::New(a) => &a.place,
        SpecCommand::Show(a) => &a.spec.place,
        SpecCommand::Diff(a) => &a.spec.place,
        SpecCommand::Revise(a) => &a.spec.place,
        SpecCommand::Approve(a) => &a.spec.place,
        SpecCommand::Reject(a) => &a.place,
        SpecCommand::Issue(a) => &a.spec.place,
    };
    let dir = project_dir(place.dir.as_ref(), &settings)?;
    let store = SpecStore::new(&dir);
    let host = candybar_bus::host_name();
    // A change: its event and what is printed.
    let changed: Result<(Outgoing, String), SpecError> = match cmd {
        SpecCommand::List(args) => return Ok(list(&store, &args).unwrap_or_else(|e| refused(&e))),
        SpecCommand::Show(args) => return Ok(show(&store, &args).unwrap_or_else(|e| refused(&e))),
        SpecCommand::Diff(args) => return Ok(diff(&store, &args).unwrap_or_else(|e| refused(&e))),
        SpecCommand::Issue(args) => return issue(&store, &args, source, &settings).await,
        SpecCommand::New(args) => {
            let text = read_input(&input_path(args.file.as_ref(), source)?)?;
            let project = project_name(args.project.as_deref(), &dir, &settings);
            store
                .create(&project, &text, "file", None)
                .map(|meta| (events::versioned(&host, &store, &meta), meta.id))
        }
        SpecCommand::Revise(args) => {
            let text = read_input(&input_path(args.file.as_ref(), source)?)?;
            store.add_version(&args.spec.id, &text, "file").map(|meta| {
                let said = format!("{} v{} (draft)", meta.id, meta.latest());
                (events::versioned(&host, &store, &meta), said)
            })
        }
        SpecCommand::Approve(args) => store.approve(&args.spec.id, args.version).map(|meta| {
            let n = meta.approved_version.unwrap_or_default();
            let said = format!("{} v{n} approved", meta.id);
            (events::approved(&host, &store, &meta), said)
        }),
        SpecCommand::Reject(args) => store.reject(&args.id).map(|meta| {
            let said = format!("{} rejected", meta.id);
            (events::rejected(&host, &store, &meta), said)
        }),
    };
    match changed {
        Ok((event, said)) => {
            announce(vec![event], source, &settings).await;
            println!("{said}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(refused(&e)),
    }
}

fn list(store: &SpecStore, args: &ListArgs) -> Result<ExitCode, SpecError> {
    let listing = store.list()?;
    for p in &listing.problems {
        eprintln!("candybar: {p}");
    }
    let specs: Vec<&Meta> = listing
        .specs
        .iter()
        .filter(|m| {
            args.status
                .as_deref()
                .is_none_or(|s| m.status.as_str() == s)
        })
        .filter(|m| args.project.as_deref().is_none_or(|p| m.project == p))
        .collect();
    match args.format {
        ListFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&specs).unwrap_or_default()
        ),
        ListFormat::Table => {
            if specs.is_empty() {
                println!("no specs in {}", store.root().display());
            }
            for m in specs {
                let issue = m
                    .issue
                    .as_ref()
                    .map_or(String::new(), |i| format!("  {}", i.url));
                println!(
                    "{:<48} {:<9} v{:<3} {:<16} {}{issue}",
                    m.id,
                    m.status.as_str(),
                    m.latest(),
                    m.project,
                    candybar_core::text::printable(&m.title)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(store: &SpecStore, args: &ShowArgs) -> Result<ExitCode, SpecError> {
    let meta = store.get(&args.spec.id)?;
    if args.meta {
        println!(
            "{}",
            serde_json::to_string_pretty(&meta).unwrap_or_default()
        );
    } else {
        let (_, text) = store.read(&meta, args.version)?;
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

fn diff(store: &SpecStore, args: &DiffArgs) -> Result<ExitCode, SpecError> {
    let meta = store.get(&args.spec.id)?;
    let (a, old) = store.read(&meta, Some(args.older))?;
    let (b, new) = store.read(&meta, args.newer)?;
    print!(
        "{}",
        candybar_specs::store::unified_diff(&old, &new, &format!("v{a}.md"), &format!("v{b}.md"))
    );
    Ok(ExitCode::SUCCESS)
}

/// Files the approved version; on GitHub's refusal the spec stays approved, the reason kept in
/// its meta.json, and the command can simply be run again.
async fn issue(
    store: &SpecStore,
    args: &IssueArgs,
    source: &SourceArgs,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let meta = match store.get(&args.spec.id) {
        Ok(m) => m,
        Err(e) => return Ok(refused(&e)),
    };
    let Some(repo) = args
        .repo
        .clone()
        .or_else(|| settings.file.github.repo.clone())
    else {
        return Ok(refused(
            &"no repository to file in: give --repo OWNER/NAME or set [github] repo",
        ));
    };
    match (meta.status, &meta.issue) {
        (Status::Filed, Some(i)) => {
            eprintln!("candybar: {} is already filed", meta.id);
            println!("{}", i.url);
            return Ok(ExitCode::SUCCESS);
        }
        (Status::Approved, _) => {}
        (s, _) => {
            return Ok(refused(&format!(
                "spec {} is {}: approve it first (`candybar spec approve {}`)",
                meta.id,
                s.as_str(),
                meta.id
            )));
        }
    }
    let version = meta.approved_version.unwrap_or_else(|| meta.latest());
    let text = match store.read(&meta, Some(version)) {
        Ok((_, t)) => t,
        Err(e) => return Ok(refused(&e)),
    };
    let api = settings
        .file
        .github
        .api
        .clone()
        .unwrap_or_else(|| github::DEFAULT_API.to_owned());
    let new_issue = match github::issue_for(&repo, &meta, version, &text) {
        Ok(i) => i,
        Err(e) => {
            let _ = store.filing_failed(&meta, &e.to_string());
            return Ok(refused(&e));
        }
    };
    if args.dry_run {
        print!("{}", GitHub::describe(&api, &new_issue));
        return Ok(ExitCode::SUCCESS);
    }
    let token = tokio::task::block_in_place(|| crate::secrets::get("github-token"))
        .ok()
        .and_then(|(v, _)| v)
        .map(candybar_core::redact::Secret::new);
    let filed = match token {
        None => Err(GitHubError::NoToken),
        Some(token) => match GitHub::new(&api, token) {
            Ok(gh) => gh.file(&new_issue).await,
            Err(e) => Err(e),
        },
    };
    match filed {
        Ok(created) => {
            let issue = FiledIssue {
                url: created.url.clone(),
                number: created.number,
                repo,
                version,
                filed: candybar_core::time::format_rfc3339(candybar_core::time::now_us()),
            };
            let meta = store.filed(&meta, issue)?;
            let host = candybar_bus::host_name();
            if let Some(event) = events::issue_created(&host, store, &meta) {
                announce(vec![event], source, settings).await;
            }
            println!("{}", created.url);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = store.filing_failed(&meta, &e.to_string());
            eprintln!(
                "candybar: {e}\ncandybar: {} stays approved and not filed; run the same command \
                 to try again",
                meta.id
            );
            Ok(ExitCode::from(1))
        }
    }
}
