//! Mission Control from the journal: the events it reads (lifecycle, portfolio, decisions, …)
//! found through the block indexes — a block whose types hold none of them is not decompressed —
//! and fed to a [`Mission`] in time order. `candybar mission …` and the window's Mission view
//! start from it.

use std::path::Path;
use std::time::{Duration, Instant};

use candybar_core::filter::Filter;
use candybar_core::mission::{FILTER, Mission};
use candybar_core::time::{Micros, now_us};
use candybar_journal::{Entry, JournalReader};

/// The types among a block's that Mission Control reads (`Some(empty)`: none); `None` when the
/// index does not list them (every event is looked at).
fn mission_types(
    ix: &candybar_journal::BlockIndex,
    filter: &Filter,
    now: Micros,
) -> Option<Vec<String>> {
    use candybar_core::filter::{BlockSummary as _, SummaryField};
    if !filter.may_match_block(ix, now) {
        return Some(Vec::new());
    }
    let mut types = Vec::new();
    ix.any_value(SummaryField::Type, &mut |t| {
        if candybar_core::mission::wants(t) {
            types.push(t.to_owned());
        }
        false
    })?;
    Some(types)
}

/// What a load did.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub mission: Mission,
    pub blocks_read: usize,
    /// Blocks their index ruled out (none of Mission Control's types).
    pub blocks_skipped: usize,
    /// Mission Control's events read.
    pub events: u64,
    pub took: Duration,
    /// The newest receive time read (live reading goes on from there).
    pub newest_us: Option<Micros>,
    /// It started from the model saved by the last load (only the blocks after it were read).
    pub from_snapshot: bool,
    /// Everything up to here is in `mission`: worth saving ([`Loaded::save`]) when `Some`.
    pub save_until: Option<Micros>,
}

impl Loaded {
    /// Saves the model beside the journal in `dir` for the next load (after the answers are out:
    /// it takes a while on a big model).
    pub fn save(&self, dir: &Path) {
        if let Some(until) = self.save_until {
            write_snapshot(dir, &self.mission, until);
        }
    }
}

/// The model a load saves beside the journal, so the next one reads only what came after.
const SNAPSHOT: &str = "mission-snapshot.json";
/// Its layout; another is ignored (read from the start again).
const SNAPSHOT_FORMAT: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    format: u32,
    /// Every event received up to here is in `mission`.
    until_us: Micros,
    mission: Mission,
}

/// The model saved in `dir`, when there is one of this format (a broken one is ignored).
fn read_snapshot(dir: &Path) -> Option<Snapshot> {
    let bytes = std::fs::read(dir.join(SNAPSHOT)).ok()?;
    let snap: Snapshot = serde_json::from_slice(&bytes)
        .map_err(|e| {
            tracing::warn!("the saved Mission model does not read ({e}): reading the journal");
        })
        .ok()?;
    (snap.format == SNAPSHOT_FORMAT).then_some(snap)
}

/// Saves the model beside the journal (whole or not at all; a journal one may not write to is
/// read from the start next time).
fn write_snapshot(dir: &Path, mission: &Mission, until_us: Micros) {
    #[derive(serde::Serialize)]
    struct Saving<'a> {
        format: u32,
        until_us: Micros,
        mission: &'a Mission,
    }
    let snap = Saving {
        format: SNAPSHOT_FORMAT,
        until_us,
        mission,
    };
    let tmp = dir.join(format!(".{SNAPSHOT}.tmp"));
    let written = serde_json::to_vec(&snap)
        .map_err(|e| e.to_string())
        .and_then(|bytes| std::fs::write(&tmp, bytes).map_err(|e| e.to_string()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(SNAPSHOT)).map_err(|e| e.to_string()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!("cannot save the Mission model in {}: {e}", dir.display());
    }
}

/// Reads the journal in `dir` up to `until_us` (receive time) into a [`Mission`];
/// `progress(done, total)` is told as blocks are read.
///
/// # Errors
/// The journal cannot be opened (said with its directory and what to do).
pub fn load(
    dir: &Path,
    until_us: Micros,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Loaded, String> {
    let started = Instant::now();
    if !dir.exists() {
        return Err(format!(
            "no journal in {}: record one with `candybar record` (or open the window, which \
             records what it receives), or give --journal DIR",
            dir.display()
        ));
    }
    let mut reader = JournalReader::open(dir)
        .map_err(|e| format!("cannot read the journal in {}: {e}", dir.display()))?;
    let filter = Filter::new(FILTER).map_err(|e| format!("mission filter: {e}"))?;
    let now = now_us();
    // The model saved last time, when it is not newer than asked for: only what came after it
    // is read.
    let saved = read_snapshot(dir).filter(|s| s.until_us <= until_us);
    let from_us = saved.as_ref().map(|s| s.until_us);
    let mut blocks: Vec<_> = reader
        .blocks()
        .filter(|b| b.header.min_us <= until_us && from_us.is_none_or(|f| b.header.max_us > f))
        .copied()
        .collect();
    // Time order: a later status overrides an earlier one (an import may have added old blocks
    // at the end).
    blocks.sort_by_key(|b| (b.header.min_us, b.header.max_us));
    let total = blocks.len();
    let from_snapshot = saved.is_some();
    let mut mission = saved.map_or_else(Mission::new, |s| s.mission);
    let (mut read, mut skipped, mut events) = (0, 0, 0u64);
    let mut newest_us = None;
    for (i, b) in blocks.iter().enumerate() {
        if i % 64 == 0 {
            progress(i, total);
        }
        newest_us = Some(newest_us.map_or(b.header.max_us, |n: Micros| n.max(b.header.max_us)));
        // The block's index says which of Mission Control's types it holds: none, and it is not
        // read; some, and only the events whose body (or routing key, or AMQP type) names one of
        // them are decoded.
        let wanted = reader
            .index(b)
            .and_then(|ix| mission_types(&ix, &filter, now));
        let finders: Option<Vec<memchr::memmem::Finder<'static>>> = match wanted {
            Some(types) if types.is_empty() => {
                skipped += 1;
                continue;
            }
            Some(types) => Some(
                types
                    .iter()
                    .map(|t| memchr::memmem::Finder::new(t.as_bytes()).into_owned())
                    .collect(),
            ),
            None => None,
        };
        let Some(entries) = reader.read(b) else {
            continue;
        };
        read += 1;
        for e in &entries {
            let Entry::Event(m) = e else { continue };
            if m.received_us > until_us || from_us.is_some_and(|f| m.received_us <= f) {
                continue;
            }
            if let Some(finders) = &finders {
                let named = finders.iter().any(|f| {
                    f.find(&m.body).is_some()
                        || f.find(m.routing_key.as_bytes()).is_some()
                        || m.props
                            .as_ref()
                            .and_then(|p| p.kind.as_deref())
                            .is_some_and(|k| f.find(k.as_bytes()).is_some())
                });
                if !named {
                    continue;
                }
            }
            if mission.ingest_raw(m) {
                events += 1;
            }
        }
    }
    progress(total, total);
    // Worth saving for next time: everything up to the newest event the journal holds (or
    // `until_us`).
    let newest = reader.newest_us().map_or(until_us, |n| n.min(until_us));
    let save_until =
        (!from_snapshot || events > 0 || from_us.is_some_and(|f| newest > f)).then_some(newest);
    Ok(Loaded {
        mission,
        blocks_read: read,
        blocks_skipped: skipped,
        events,
        took: started.elapsed(),
        newest_us,
        from_snapshot,
        save_until,
    })
}

/// Where briefings are kept: `[mission] archive`, else `briefings` in the data dir.
#[must_use]
pub fn archive_dir(section: &candybar_core::config::MissionSection) -> Option<std::path::PathBuf> {
    section.archive.clone().or_else(|| {
        directories::ProjectDirs::from("", "", "candybar").map(|d| d.data_dir().join("briefings"))
    })
}

/// Keeps `b` in `dir` as `YYYY-MM-DD-HHMM.md` (local time of its end), written whole or not at
/// all; its path.
///
/// # Errors
/// The directory or the file cannot be written (said with the path and what to do).
pub fn save_briefing(
    dir: &Path,
    b: &candybar_core::mission::Briefing,
) -> Result<std::path::PathBuf, String> {
    use chrono::{Local, TimeZone as _};
    let name = Local.timestamp_micros(b.until_us).single().map_or_else(
        || format!("{}", b.until_us),
        |t| t.format("%Y-%m-%d-%H%M").to_string(),
    );
    let path = dir.join(format!("{name}.md"));
    let words = |e: std::io::Error, p: &Path| {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => " — choose a folder you can write to",
            std::io::ErrorKind::StorageFull => " — the disk is full",
            _ => "",
        };
        format!("cannot keep the briefing in {}: {e}{hint}", p.display())
    };
    std::fs::create_dir_all(dir).map_err(|e| words(e, dir))?;
    let tmp = dir.join(format!(".{name}.md.tmp"));
    std::fs::write(&tmp, &b.markdown).map_err(|e| words(e, &tmp))?;
    std::fs::rename(&tmp, &path).map_err(|e| words(e, &path))?;
    Ok(path)
}

/// The briefings kept in `dir`, newest first: (path, title).
#[must_use]
pub fn archived(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::path::PathBuf, String)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| {
            let title = std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .next()
                        .map(|l| l.trim_start_matches("# ").to_owned())
                })
                .unwrap_or_default();
            (p, title)
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found
}

/// `reporting.report.started` for a briefing run (before it is written).
#[must_use]
pub fn report_started(
    host: &str,
    run_id: &str,
    b: &candybar_core::mission::Briefing,
) -> candybar_core::event::RawMessage {
    report_event(
        host,
        "reporting.report.started",
        serde_json::json!({
            "run_id": run_id,
            "report_date": candybar_core::time::format_rfc3339(b.until_us),
            "kind": "briefing",
            "title": b.title,
            "since": candybar_core::time::format_rfc3339(b.since_us),
            "until": candybar_core::time::format_rfc3339(b.until_us),
        }),
    )
}

/// `reporting.report.completed` (kept at `path`) or `reporting.report.failed` (`Err`: why).
#[must_use]
pub fn report_finished(
    host: &str,
    run_id: &str,
    b: &candybar_core::mission::Briefing,
    kept: &Result<std::path::PathBuf, String>,
) -> candybar_core::event::RawMessage {
    let sections: Vec<&str> = b
        .markdown
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();
    let mut payload = serde_json::json!({
        "run_id": run_id,
        "report_date": candybar_core::time::format_rfc3339(b.until_us),
        "kind": "briefing",
        "title": b.title,
        "sections": sections,
        "sources": b.sources.len(),
    });
    let kind = match kept {
        Ok(path) => {
            payload["path"] = serde_json::json!(path.display().to_string());
            payload["markdown"] = serde_json::json!(b.markdown);
            "reporting.report.completed"
        }
        Err(e) => {
            payload["error"] = serde_json::json!(e);
            "reporting.report.failed"
        }
    };
    report_event(host, kind, payload)
}

fn report_event(
    host: &str,
    kind: &str,
    payload: serde_json::Value,
) -> candybar_core::event::RawMessage {
    let out = candybar_sessions::events::envelope_v1(
        host,
        "briefing",
        kind,
        payload,
        serde_json::json!({}),
    );
    candybar_core::event::RawMessage {
        received_us: candybar_core::time::now_us(),
        routing_key: out.routing_key,
        body: out.body,
        ..candybar_core::event::RawMessage::default()
    }
}

/// Writes the briefing into `archive` and, with a broker, announces the run on it: `started`,
/// then `completed` or `failed`. What happened, in words (the file is kept whatever the bus does).
pub async fn keep_and_announce(
    b: &candybar_core::mission::Briefing,
    archive: &Path,
    bus: Option<(&str, &str)>,
) -> Result<(std::path::PathBuf, Option<String>), String> {
    let host = candybar_bus::host_name();
    let run_id = format!("briefing-{}", b.until_us);
    let mut publisher =
        bus.map(|(url, exchange)| candybar_bus::publish::Publisher::new(url, exchange));
    let mut bus_error = None;
    if let Some(p) = &mut publisher
        && let Err(e) = p.publish_window(&[report_started(&host, &run_id, b)]).await
    {
        bus_error = Some(e.to_string());
    }
    let kept = save_briefing(archive, b);
    if let Some(p) = &mut publisher
        && bus_error.is_none()
        && let Err(e) = p
            .publish_window(&[report_finished(&host, &run_id, b, &kept)])
            .await
    {
        bus_error = Some(e.to_string());
    }
    kept.map(|path| (path, bus_error))
}

/// What the model is asked to do with a briefing.
const REWRITE_PROMPT: &str = "You edit an operations briefing for busy engineers. Rewrite the \
Markdown below so it reads well: keep every heading, every fact, every number and every \
footnote marker such as [^3] exactly where it belongs; add nothing that is not in it. Answer \
with the Markdown only.";

/// The briefing rewritten by an OpenAI-compatible chat endpoint (`url` ends before
/// `/chat/completions`); its sources list is kept as written. `Err` (the briefing is then used as
/// it is): the endpoint did not answer well, or the rewrite lost a heading or a source.
///
/// # Errors
/// An endpoint that cannot be reached or answers with an error, an answer without text, or a
/// rewrite that dropped a heading or a footnote marker.
pub async fn rewrite(
    b: &candybar_core::mission::Briefing,
    url: &str,
    model: &str,
    key: Option<&str>,
) -> Result<candybar_core::mission::Briefing, String> {
    let (body, sources) = match b.markdown.find("\n---\n") {
        Some(i) => b.markdown.split_at(i),
        None => (b.markdown.as_str(), ""),
    };
    let endpoint = format!("{}/chat/completions", url.trim_end_matches('/'));
    let request = serde_json::json!({
        "model": model,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": REWRITE_PROMPT},
            {"role": "user", "content": body},
        ],
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_mins(2))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.post(&endpoint).json(&request);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let shown = candybar_core::redact::mask_secrets_in(&endpoint);
    let resp = req
        .send()
        .await
        .map_err(|e| format!("the rewriting model at {shown} did not answer: {e}"))?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.map_err(|e| {
        format!("the rewriting model at {shown} answered {status} without JSON: {e}")
    })?;
    if !status.is_success() {
        let why = answer
            .pointer("/error/message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("no reason given");
        return Err(format!(
            "the rewriting model at {shown} answered {status}: {why}"
        ));
    }
    let text = answer
        .pointer("/choices/0/message/content")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| format!("the rewriting model at {shown} answered without text"))?;
    // Nothing may be lost: every heading and every source marker is still there.
    let marks = |t: &str| -> std::collections::BTreeSet<String> {
        t.match_indices("[^")
            .filter_map(|(i, _)| t[i..].find(']').map(|j| t[i..=i + j].to_owned()))
            .chain(
                t.lines()
                    .filter(|l| l.starts_with('#'))
                    .map(|l| l.trim().to_owned()),
            )
            .collect()
    };
    let lost: Vec<String> = marks(body).difference(&marks(text)).cloned().collect();
    if !lost.is_empty() {
        return Err(format!(
            "the rewrite lost {} (kept the briefing as written)",
            lost.join(", ")
        ));
    }
    let mut out = b.clone();
    out.markdown = format!("{}\n{sources}", text.trim_end());
    Ok(out)
}
