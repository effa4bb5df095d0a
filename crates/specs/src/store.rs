//! Specs as files a person can read and version: `.sentra/specs/{project}/{spec-id}/v{N}.md` and
//! a `meta.json` beside them (title, project, status, versions with their times, the conversation
//! they came from, the issue once filed).
//!
//! Two writers (two windows, a window and a script) are safe: a version's file is created only if
//! it does not exist yet (the loser takes the next number), and `meta.json` is read, changed and
//! replaced (written aside, then renamed) under a lock file. Files edited or added by hand are
//! read as they are on disk: a `v{N}.md` that `meta.json` does not list is a version all the same.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use candybar_core::time::{Micros, format_rfc3339, now_us};
use serde::{Deserialize, Serialize};

/// The `meta.json` format this build writes and reads; a newer one is refused in words.
pub const FORMAT: u32 = 1;
/// The largest spec kept (a spec is prose: this is far beyond any real one, and bounds memory).
pub const MAX_SPEC_BYTES: usize = 8 << 20;
/// Where specs live inside a project's directory.
pub const SPECS_DIR: &str = ".sentra/specs";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Approved,
    Rejected,
    Filed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Filed => "filed",
        }
    }
}

/// One version as `meta.json` remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub version: u32,
    /// RFC 3339.
    pub created: String,
    /// What made it: `conversation`, `continue`, `file`, or `disk` (found on disk, written by
    /// hand or by another tool).
    #[serde(default)]
    pub origin: String,
}

/// The GitHub issue a spec was filed as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiledIssue {
    pub url: String,
    pub number: u64,
    pub repo: String,
    /// Which version was filed.
    pub version: u32,
    pub filed: String,
}

/// `meta.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default = "first_format")]
    pub format: u32,
    pub id: String,
    pub title: String,
    pub project: String,
    pub created: String,
    #[serde(default)]
    pub updated: String,
    pub status: Status,
    pub versions: Vec<Version>,
    /// The conversation the spec came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// The version approved (what "File on GitHub" sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<FiledIssue>,
    /// Why the last attempt to file it failed (kept until one succeeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn first_format() -> u32 {
    1
}

impl Meta {
    /// The newest version's number.
    pub fn latest(&self) -> u32 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "project name {0:?} cannot be used: it names a directory, so it may hold letters, digits, \
         '.', '-' and '_' (up to 64, not starting with '.')"
    )]
    BadProject(String),
    #[error("no spec {id:?} under {root}")]
    NotFound { id: String, root: PathBuf },
    #[error("{id:?} could be any of {matches}: give more of the id")]
    Ambiguous { id: String, matches: String },
    #[error("spec {id} has no version {version} (it has {have})")]
    NoVersion {
        id: String,
        version: u32,
        have: String,
    },
    #[error("the spec is empty: nothing to keep")]
    Empty,
    #[error("the spec is {0} bytes; a spec is kept up to {MAX_SPEC_BYTES} bytes")]
    TooBig(usize),
    #[error("the spec is not text (UTF-8): {0}")]
    NotText(String),
    #[error(
        "{path} was written by a newer candybar (format {found}; this one reads {FORMAT}): \
         update candybar to read it"
    )]
    Newer { path: PathBuf, found: u32 },
    #[error("{path} does not read: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("spec {id} is {status}: {what}")]
    State {
        id: String,
        status: &'static str,
        what: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpecError + '_ {
    move |source| SpecError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A project's name, checked: it becomes a directory under `.sentra/specs`.
pub fn check_project(name: &str) -> Result<&str, SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(name)
    } else {
        Err(SpecError::BadProject(name.to_owned()))
    }
}

/// A spec's text, checked: not empty, not huge.
pub fn check_text(markdown: &str) -> Result<(), SpecError> {
    if markdown.trim().is_empty() {
        return Err(SpecError::Empty);
    }
    if markdown.len() > MAX_SPEC_BYTES {
        return Err(SpecError::TooBig(markdown.len()));
    }
    Ok(())
}

/// The spec's title: its first `# ` heading, else its first line.
pub fn title_of(markdown: &str) -> String {
    let lines = || markdown.lines().map(str::trim).filter(|l| !l.is_empty());
    let title = lines()
        .find_map(|l| l.strip_prefix("# "))
        .or_else(|| lines().next())
        .unwrap_or("Untitled spec")
        .trim_start_matches('#')
        .trim();
    let title: String = title.chars().take(120).collect();
    if title.is_empty() {
        "Untitled spec".to_owned()
    } else {
        title
    }
}

/// A new spec's id: its title in lowercase words joined by `-` (at most 40 characters) and six
/// random hex digits, so two people never pick the same one.
fn new_id(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let random = uuid::Uuid::new_v4().simple().to_string();
    if slug.is_empty() {
        format!("spec-{}", &random[..6])
    } else {
        format!("{slug}-{}", &random[..6])
    }
}

/// The specs of one project directory.
#[derive(Clone, Debug)]
pub struct SpecStore {
    root: PathBuf,
}

/// What [`SpecStore::list`] found: the specs, and what could not be read (said, not fatal).
#[derive(Debug, Default)]
pub struct Listing {
    pub specs: Vec<Meta>,
    pub problems: Vec<String>,
}

impl SpecStore {
    /// The specs kept in `project_dir` (under its `.sentra/specs`).
    pub fn new(project_dir: &Path) -> Self {
        Self {
            root: project_dir.join(SPECS_DIR),
        }
    }

    /// `.sentra/specs` of the project directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, meta: &Meta) -> PathBuf {
        self.root.join(&meta.project).join(&meta.id)
    }

    /// Where version `n` of a spec is.
    pub fn version_path(&self, meta: &Meta, n: u32) -> PathBuf {
        self.dir(meta).join(format!("v{n}.md"))
    }

    /// A new spec in `project`, its first version `markdown`.
    pub fn create(
        &self,
        project: &str,
        markdown: &str,
        origin: &str,
        conversation: Option<&str>,
    ) -> Result<Meta, SpecError> {
        check_project(project)?;
        check_text(markdown)?;
        let title = title_of(markdown);
        let parent = self.root.join(project);
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        // The id is random: a clash is a new draw, not an overwrite.
        let (id, dir) = loop {
            let id = new_id(&title);
            let dir = parent.join(&id);
            match fs::create_dir(&dir) {
                Ok(()) => break (id, dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
        };
        let now = format_rfc3339(now_us());
        write_new(&dir.join("v1.md"), markdown.as_bytes())?;
        let meta = Meta {
            format: FORMAT,
            id,
            title,
            project: project.to_owned(),
            created: now.clone(),
            updated: now.clone(),
            status: Status::Draft,
            versions: vec![Version {
                version: 1,
                created: now,
                origin: origin.to_owned(),
            }],
            conversation: conversation.map(str::to_owned),
            approved_version: None,
            issue: None,
            last_error: None,
        };
        write_replacing(&dir.join("meta.json"), &meta_json(&meta))?;
        Ok(meta)
    }

    /// Every spec, newest first; specs whose `meta.json` does not read are named in `problems`.
    pub fn list(&self) -> Result<Listing, SpecError> {
        let mut listing = Listing::default();
        let projects = match fs::read_dir(&self.root) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(listing),
            Err(e) => return Err(io_err(&self.root)(e)),
        };
        for project in projects.flatten() {
            if !project.path().is_dir() {
                continue;
            }
            let Ok(specs) = fs::read_dir(project.path()) else {
                continue;
            };
            for spec in specs.flatten() {
                let dir = spec.path();
                if !dir.join("meta.json").exists() {
                    continue;
                }
                match read_meta(&dir) {
                    Ok(meta) => listing.specs.push(meta),
                    Err(e) => listing.problems.push(e.to_string()),
                }
            }
        }
        listing
            .specs
            .sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(listing)
    }

    /// The spec `id` (or the one spec whose id starts with it).
    pub fn get(&self, id: &str) -> Result<Meta, SpecError> {
        let listing = self.list()?;
        if let Some(m) = listing.specs.iter().find(|m| m.id == id) {
            return Ok(m.clone());
        }
        let matches: Vec<&Meta> = listing
            .specs
            .iter()
            .filter(|m| !id.is_empty() && m.id.starts_with(id))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(listing.problems.into_iter().next().map_or_else(
                || SpecError::NotFound {
                    id: id.to_owned(),
                    root: self.root.clone(),
                },
                |p| SpecError::Corrupt {
                    path: self.root.clone(),
                    reason: format!("no spec {id:?} reads here; one that does not: {p}"),
                },
            )),
            many => Err(SpecError::Ambiguous {
                id: id.to_owned(),
                matches: many
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Version `n` of the spec (the newest when `None`), as it is on disk now.
    pub fn read(&self, meta: &Meta, n: Option<u32>) -> Result<(u32, String), SpecError> {
        let n = n.unwrap_or_else(|| meta.latest());
        if !meta.versions.iter().any(|v| v.version == n) {
            return Err(SpecError::NoVersion {
                id: meta.id.clone(),
                version: n,
                have: versions_words(meta),
            });
        }
        let path = self.version_path(meta, n);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        if bytes.len() > MAX_SPEC_BYTES {
            return Err(SpecError::TooBig(bytes.len()));
        }
        String::from_utf8(bytes)
            .map(|text| (n, text))
            .map_err(|e| SpecError::NotText(format!("{}: {e}", path.display())))
    }

    /// A new version (`v{N+1}`): the spec goes back to draft, to be approved again. A filed
    /// spec takes no new versions (its issue says what was filed): start a new spec.
    pub fn add_version(&self, id: &str, markdown: &str, origin: &str) -> Result<Meta, SpecError> {
        check_text(markdown)?;
        let meta = self.get(id)?;
        let dir = self.dir(&meta);
        self.update(&meta, |meta| {
            if meta.status == Status::Filed {
                return Err(state(meta, "start a new spec to change what was filed"));
            }
            // The number is taken by creating its file: another writer's version is never
            // overwritten, the later one takes the next number.
            let mut n = meta.latest() + 1;
            loop {
                match write_new(&dir.join(format!("v{n}.md")), markdown.as_bytes()) {
                    Ok(()) => break,
                    Err(SpecError::Io { source, .. })
                        if source.kind() == io::ErrorKind::AlreadyExists =>
                    {
                        n += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            meta.versions.push(Version {
                version: n,
                created: format_rfc3339(now_us()),
                origin: origin.to_owned(),
            });
            meta.versions.sort_by_key(|v| v.version);
            meta.title = title_of(markdown);
            meta.status = Status::Draft;
            meta.approved_version = None;
            Ok(())
        })
    }

    /// Approve the spec's newest version (or `version`).
    pub fn approve(&self, id: &str, version: Option<u32>) -> Result<Meta, SpecError> {
        let meta = self.get(id)?;
        self.update(&meta, |meta| {
            match meta.status {
                Status::Filed => return Err(state(meta, "it is already filed")),
                Status::Draft | Status::Approved | Status::Rejected => {}
            }
            let n = version.unwrap_or_else(|| meta.latest());
            if !meta.versions.iter().any(|v| v.version == n) {
                return Err(SpecError::NoVersion {
                    id: meta.id.clone(),
                    version: n,
                    have: versions_words(meta),
                });
            }
            meta.status = Status::Approved;
            meta.approved_version = Some(n);
            Ok(())
        })
    }

    /// Reject the spec (it stays on disk; Continue can still make a new version of it).
    pub fn reject(&self, id: &str) -> Result<Meta, SpecError> {
        let meta = self.get(id)?;
        self.update(&meta, |meta| {
            if meta.status == Status::Filed {
                return Err(state(meta, "it is already filed"));
            }
            meta.status = Status::Rejected;
            meta.approved_version = None;
            Ok(())
        })
    }

    /// The spec was filed as `issue`.
    pub fn filed(&self, meta: &Meta, issue: FiledIssue) -> Result<Meta, SpecError> {
        self.update(meta, |meta| {
            meta.status = Status::Filed;
            meta.issue = Some(issue);
            meta.last_error = None;
            Ok(())
        })
    }

    /// Filing failed: the spec stays approved, the reason kept for the next look.
    pub fn filing_failed(&self, meta: &Meta, reason: &str) -> Result<Meta, SpecError> {
        self.update(meta, |meta| {
            meta.last_error = Some(reason.to_owned());
            Ok(())
        })
    }

    /// Reads `meta.json` fresh under the spec's lock, changes it, and replaces it.
    fn update(
        &self,
        meta: &Meta,
        change: impl FnOnce(&mut Meta) -> Result<(), SpecError>,
    ) -> Result<Meta, SpecError> {
        let dir = self.dir(meta);
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        let mut fresh = read_meta(&dir)?;
        change(&mut fresh)?;
        fresh.updated = format_rfc3339(now_us());
        fresh.format = FORMAT;
        write_replacing(&dir.join("meta.json"), &meta_json(&fresh))?;
        drop(lock);
        Ok(fresh)
    }
}

fn state(meta: &Meta, what: &str) -> SpecError {
    SpecError::State {
        id: meta.id.clone(),
        status: meta.status.as_str(),
        what: what.to_owned(),
    }
}

fn versions_words(meta: &Meta) -> String {
    match meta.latest() {
        0 => "none".to_owned(),
        1 => "v1".to_owned(),
        n => format!("v1–v{n}"),
    }
}

fn meta_json(meta: &Meta) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(meta).unwrap_or_default();
    text.push(b'\n');
    text
}

/// `meta.json` of the spec in `dir`, with the versions found on disk beside it (edited or added
/// by hand) merged in.
fn read_meta(dir: &Path) -> Result<Meta, SpecError> {
    let path = dir.join("meta.json");
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| SpecError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if let Some(found) = value.get("format").and_then(serde_json::Value::as_u64)
        && found > u64::from(FORMAT)
    {
        return Err(SpecError::Newer {
            path,
            found: found.min(u64::from(u32::MAX)) as u32,
        });
    }
    let mut meta: Meta = serde_json::from_value(value).map_err(|e| SpecError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(n) = name.to_str().and_then(|n| {
                n.strip_prefix('v')?
                    .strip_suffix(".md")?
                    .parse::<u32>()
                    .ok()
            }) else {
                continue;
            };
            if n > 0 && !meta.versions.iter().any(|v| v.version == n) {
                let created = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or_else(String::new, |d| format_rfc3339(d.as_micros() as Micros));
                meta.versions.push(Version {
                    version: n,
                    created,
                    origin: "disk".to_owned(),
                });
            }
        }
    }
    meta.versions.sort_by_key(|v| v.version);
    Ok(meta)
}

/// Creates `path` with `bytes`, failing if it exists.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), SpecError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        // A half-written version (a full disk) is not left behind to be read as one.
        let _ = fs::remove_file(path);
        return Err(io_err(path)(e));
    }
    Ok(())
}

/// Replaces `path` with `bytes` at once: written aside, then renamed over it.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), SpecError> {
    let aside = path.with_extension(format!("json.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = File::create(&aside)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&aside, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&aside);
        return Err(io_err(path)(e));
    }
    Ok(())
}

/// What changed from `old` to `new`, as a unified diff with `a` and `b` as the files' names.
pub fn unified_diff(old: &str, new: &str, a: &str, b: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(a, b)
        .to_string()
}

/// What changed from `old` to `new`, line by line: `'-'` removed, `'+'` added, `' '` kept.
pub fn diff_lines(old: &str, new: &str) -> Vec<(char, String)> {
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|c| {
            let tag = match c.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            (tag, c.value().trim_end_matches('\n').to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_come_from_the_first_heading() {
        assert_eq!(title_of("intro\n# Voice notes\n## More"), "Voice notes");
        assert_eq!(title_of("\n\n  Just a line\nmore"), "Just a line");
        assert_eq!(title_of("## Only a subheading"), "Only a subheading");
        assert_eq!(title_of("#\n"), "Untitled spec");
    }

    #[test]
    fn ids_are_readable_and_distinct() {
        let a = new_id("Voice notes: record & replay!");
        assert!(a.starts_with("voice-notes-record-replay-"), "{a}");
        assert_ne!(a, new_id("Voice notes: record & replay!"));
        assert!(new_id("????").starts_with("spec-"));
        assert!(new_id(&"x".repeat(500)).len() <= 47);
    }

    #[test]
    fn project_names_cannot_leave_the_specs_directory() {
        for bad in [
            "../etc",
            "a/b",
            "",
            ".hidden",
            "a b",
            "naïve",
            &"p".repeat(65),
        ] {
            assert!(check_project(bad).is_err(), "{bad:?}");
        }
        for good in ["candybar", "agent-platform_2", "v1.2"] {
            assert!(check_project(good).is_ok(), "{good:?}");
        }
    }
}
