//! Mission Control from the journal: the events it reads (lifecycle, portfolio, decisions, …)
//! found through the block indexes — a block whose types hold none of them is not decompressed —
//! and fed to a [`Mission`] in time order. `candybar mission …` and the window's Mission view
//! start from it.

use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::time::{Duration, Instant};

use candybar_core::event::RawMessage;
use candybar_core::filter::Filter;
use candybar_core::mission::{FILTER, MARKS, Mission};
use candybar_core::time::{Micros, now_us};
use candybar_journal::{Entry, JournalReader, Keep};

/// Whether a block may hold Mission Control's events: `false` only when its index rules them
/// all out (an index that does not list the types rules nothing out).
fn may_hold_mission(ix: &candybar_journal::BlockIndex, filter: &Filter, now: Micros) -> bool {
    use candybar_core::filter::{BlockSummary as _, SummaryField};
    if !filter.may_match_block(ix, now) {
        return false;
    }
    ix.any_value(SummaryField::Type, &mut |t| {
        candybar_core::mission::wants(t)
    })
    .unwrap_or(true)
}

/// What a load keeps of a block before decoding any of it: the events received within
/// `(from, until]` that name one of Mission Control's types ([`MARKS`]) — in the body, the routing
/// key or the AMQP type (all of them lie between the end of the previous event's body and the
/// end of the event's own). The whole block is searched once for all the marks; out of ten
/// million demo events, some twenty thousand are decoded.
struct Screen {
    marks: Marks,
    from_us: Option<Micros>,
    until_us: Micros,
}

impl Screen {
    fn new(from_us: Option<Micros>, until_us: Micros) -> Self {
        let marks = Marks::new();
        Self {
            marks,
            from_us,
            until_us,
        }
    }
}

/// The search for [`MARKS`]: SIMD (Teddy) where the CPU has it — several times faster here than
/// the automaton, whose prefilter the marks' common bytes defeat — else the automaton.
enum Marks {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
}

impl Marks {
    fn new() -> Self {
        aho_corasick::packed::Searcher::new(MARKS).map_or_else(
            || {
                Self::Automaton(
                    aho_corasick::AhoCorasick::new(MARKS)
                        .expect("a few short marks always build a searcher"),
                )
            },
            Self::Packed,
        )
    }

    /// Calls `hit` with where each mark found in `haystack` starts.
    fn each(&self, haystack: &[u8], hit: &mut dyn FnMut(usize)) {
        match self {
            Self::Packed(s) => s.find_iter(haystack).for_each(|m| hit(m.start())),
            Self::Automaton(a) => a.find_iter(haystack).for_each(|m| hit(m.start())),
        }
    }
}

impl Keep for Screen {
    fn glance(
        &self,
        raw: &[u8],
        _lower: Option<&[u8]>,
        events: &[(Micros, Range<usize>)],
        keep: &mut [bool],
    ) {
        let mut named = vec![false; events.len()];
        self.marks.each(raw, &mut |at| {
            // The first event whose body ends after the hit: the hit lies in its body, routing
            // key or properties.
            let i = events.partition_point(|(_, body)| body.end <= at);
            if let Some(n) = named.get_mut(i) {
                *n = true;
            }
        });
        for (((at, _), k), named) in events.iter().zip(keep.iter_mut()).zip(named) {
            *k = named && *at <= self.until_us && self.from_us.is_none_or(|f| *at > f);
        }
    }

    fn event(&self, _: &RawMessage) -> bool {
        true
    }
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
    // Its own temporary file: a recorder and a window may save at the same moment.
    let tmp = dir.join(format!(
        ".{SNAPSHOT}.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = serde_json::to_vec(&snap)
        .map_err(|e| e.to_string())
        .and_then(|bytes| std::fs::write(&tmp, bytes).map_err(|e| e.to_string()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(SNAPSHOT)).map_err(|e| e.to_string()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!("cannot save the Mission model in {}: {e}", dir.display());
        return;
    }
    remove_stale_saves(dir);
}

/// A save takes seconds; a temporary file older than this was left by a process killed while it
/// saved.
const STALE_SAVE: std::time::Duration = std::time::Duration::from_mins(10);

/// Removes the temporary files of saves that never finished (a writer killed mid-save).
fn remove_stale_saves(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{SNAPSHOT}.");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with(&prefix) || !name.ends_with(".tmp") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_SAVE);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Reads the journal in `dir` up to `until_us` (receive time) into a [`Mission`], on `workers`
/// threads; `progress(done, total)` is told as blocks are read.
///
/// # Errors
/// The journal cannot be opened (said with its directory and what to do).
pub fn load(
    dir: &Path,
    until_us: Micros,
    workers: usize,
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
    let from_snapshot = saved.is_some();
    let mut mission = saved.map_or_else(Mission::new, |s| s.mission);
    let newest_us = blocks.iter().map(|b| b.header.max_us).max();
    // A block whose index lists none of Mission Control's types is not read.
    let listed = blocks.len();
    blocks.retain(|b| {
        reader
            .index(b)
            .is_none_or(|ix| may_hold_mission(&ix, &filter, now))
    });
    let skipped = listed - blocks.len();
    let total = blocks.len();
    let screen = Screen::new(from_us, until_us);
    let (mut read, mut events) = (0, 0u64);
    progress(0, total);
    reader.read_each(&blocks, workers, &screen, &mut |i, entries| {
        if (i + 1) % 64 == 0 {
            progress(i + 1, total);
        }
        let Some(entries) = entries else {
            return ControlFlow::Continue(());
        };
        read += 1;
        for e in &entries {
            if let Entry::Event(m) = e
                && mission.ingest_raw(m)
            {
                events += 1;
            }
        }
        ControlFlow::Continue(())
    });
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

/// The moment of the model saved beside the journal in `dir` (every event received up to it is
/// in the model), when there is one.
/// The model itself (megabytes of JSON) is only skimmed by the parser, not built.
#[must_use]
pub fn saved_until(dir: &Path) -> Option<Micros> {
    #[derive(serde::Deserialize)]
    struct Head {
        format: u32,
        until_us: Micros,
    }
    let bytes = std::fs::read(dir.join(SNAPSHOT)).ok()?;
    let head: Head = serde_json::from_slice(&bytes).ok()?;
    (head.format == SNAPSHOT_FORMAT).then_some(head.until_us)
}

/// Forgets the model saved beside the journal in `dir`: an import is about to add events older
/// than its moment, which a read starting from it would miss for good.
///
/// # Errors
/// It cannot be removed (said with the path).
pub fn forget_saved(dir: &Path) -> Result<(), String> {
    match std::fs::remove_file(dir.join(SNAPSHOT)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "cannot remove the saved Mission Control model in {}: {e}",
            dir.display()
        )),
    }
}

/// Builds the model anew from the whole journal in `dir` (on every core) and saves it.
///
/// # Errors
/// The journal cannot be read.
pub fn save_anew(dir: &Path) -> Result<Loaded, String> {
    let loaded = load(
        dir,
        now_us(),
        crate::cli::journal::all_cores(),
        &mut |_, _| {},
    )?;
    loaded.save(dir);
    Ok(loaded)
}

/// How often [`KeepSaved`] saves the model.
pub const SAVE_EVERY: Duration = Duration::from_mins(10);

/// Keeps the model saved beside the journal in `dir` while it is written — `first` after the
/// start, then every `every` — so that a window's first Mission view reads only the minutes
/// since, not days of journal. On a thread of its own, one core; each save reads only what came
/// after the last. Stops when dropped.
pub struct KeepSaved {
    _stop: std::sync::mpsc::SyncSender<()>,
}

impl KeepSaved {
    #[must_use]
    pub fn start(dir: std::path::PathBuf, first: Duration, every: Duration) -> Option<Self> {
        let (stop, stopped) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("mission-save".into())
            .spawn(move || {
                let mut wait = first;
                // Until the owner is dropped (the channel disconnects).
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(wait)
                {
                    match load(&dir, now_us(), 1, &mut |_, _| {}) {
                        Ok(l) => l.save(&dir),
                        Err(e) => tracing::debug!("Mission Control's model not saved: {e}"),
                    }
                    wait = every;
                }
            });
        match spawned {
            Ok(_) => Some(Self { _stop: stop }),
            Err(e) => {
                tracing::warn!("cannot keep Mission Control's model saved: {e}");
                None
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use candybar_core::event::AmqpProps;
    use candybar_journal::{JournalConfig, JournalWriter};

    use super::*;

    fn created(lifecycle: &str) -> String {
        format!(
            r#"{{"payload":{{"lifecycle_id":"{lifecycle}","name":"{lifecycle}","status":"active"}}}}"#
        )
    }

    /// A save leaves no temporary file behind, and clears those a writer killed mid-save left
    /// (older than a save could take), not one another writer is writing now.
    #[test]
    fn a_save_clears_what_a_killed_save_left() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let stale = dir.join(format!(".{SNAPSHOT}.4242.ThreadId(7).tmp"));
        let writing = dir.join(format!(".{SNAPSHOT}.4343.ThreadId(2).tmp"));
        std::fs::write(&stale, b"{ half").unwrap();
        std::fs::write(&writing, b"{ half").unwrap();
        let hour_ago = std::time::SystemTime::now() - Duration::from_hours(1);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        write_snapshot(dir, &Mission::default(), 42);
        assert_eq!(saved_until(dir), Some(42));
        assert!(!stale.exists(), "a killed save's file is removed");
        assert!(writing.exists(), "a save in progress is left alone");
        let left: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        // Another version's model, or a torn one: no saved moment.
        std::fs::write(
            dir.join(SNAPSHOT),
            br#"{"format":999,"until_us":7,"mission":{}}"#,
        )
        .unwrap();
        assert_eq!(saved_until(dir), None);
        std::fs::write(dir.join(SNAPSHOT), br#"{"format":1,"until_us":7,"mis"#).unwrap();
        assert_eq!(saved_until(dir), None);
    }

    /// The screen before decoding keeps an event that names its type only in its routing key
    /// or only in its AMQP type, drops the rest, and a body merely mentioning a type is decoded
    /// and left out by its real type.
    #[test]
    fn a_load_finds_each_event_wherever_it_names_its_type() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("journal");
        let mut w = JournalWriter::open(JournalConfig::new(dir.clone()), "test").unwrap();
        let t0 = 1_769_508_000_000_000;
        let mut at = t0;
        let mut add = |routing_key: &str, kind: Option<&str>, body: String| {
            at += 1_000;
            w.append(&RawMessage {
                received_us: at,
                routing_key: routing_key.into(),
                props: kind.map(|k| {
                    Box::new(AmqpProps {
                        kind: Some(k.into()),
                        ..AmqpProps::default()
                    })
                }),
                body: body.into_bytes(),
                ..RawMessage::default()
            });
        };
        for i in 0..3_000 {
            add(
                "agent.tool.invoked",
                None,
                format!(r#"{{"type":"agent.tool.invoked","n":{i}}}"#),
            );
            if i == 1_000 {
                add("lifecycle.mission.created", None, created("lc-by-key"));
                add(
                    "x",
                    Some("lifecycle.mission.created"),
                    created("lc-by-amqp-type"),
                );
                add(
                    "agent.note",
                    None,
                    r#"{"type":"agent.note","text":"see lifecycle.mission.created","payload":{"lifecycle_id":"lc-no"}}"#.into(),
                );
                add(
                    "y",
                    None,
                    format!(
                        r#"{{"type":"lifecycle.mission.created",{}"#,
                        &created("lc-by-body")[1..]
                    ),
                );
            }
        }
        w.flush().unwrap();
        drop(w);
        let loaded = load(&dir, t0 + 3_600_000_000, 2, &mut |_, _| {}).unwrap();
        let mut projects: Vec<&str> = loaded.mission.projects.keys().map(String::as_str).collect();
        projects.sort_unstable();
        assert_eq!(projects, ["lc-by-amqp-type", "lc-by-body", "lc-by-key"]);
        assert_eq!(loaded.events, 3);
        // Nothing past `until`, nothing up to `from` (the saved model's).
        let loaded = load(&dir, t0 + 1_000_000, 2, &mut |_, _| {}).unwrap();
        assert!(loaded.mission.projects.is_empty());
    }
}
