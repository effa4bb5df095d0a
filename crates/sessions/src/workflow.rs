//! Workflows: ordered steps from a TOML file — run a command, start a session (and wait for it),
//! wait for a session, publish an event — with dependencies between steps and a failure policy.
//! `candybar workflow run NAME` runs one, printing its progress and publishing it on the bus.
//!
//! ```toml
//! description = "test, let an agent fix what fails, announce"
//! on_failure = "stop"            # or "continue": later steps that do not need the failed one run
//! parallel = 1                   # steps run at once when what they need is done (default 1:
//!                                # one at a time, in file order)
//!
//! [[step]]
//! id = "tests"
//! run = ["cargo", "test"]
//! timeout_secs = 600
//!
//! [[step]]
//! id = "fix"
//! needs = ["tests"]
//! when = "failed"                # run only if a needed step failed (default: "succeeded")
//! session = { name = "fixer", provider = "claude", prompt = "make the tests pass" }
//!
//! [[step]]
//! id = "announce"
//! needs = ["fix"]
//! when = "always"
//! publish = { routing_key = "workflow.release.tested", payload = { ok = true } }
//! ```

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::manager::{SessionError, Sessions, StartRequest};
use crate::model::Provider;
use crate::store::Outgoing;

/// The longest a step may be given.
const TIMEOUT_MAX_SECS: f64 = 7.0 * 86_400.0;
/// A step's timeout when it gives none.
const DEFAULT_TIMEOUT_SECS: f64 = 3600.0;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("no workflow {name:?} in {dir}{known}")]
    NotFound {
        name: String,
        dir: PathBuf,
        known: String,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// What happens when a step fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Nothing more starts (the default).
    #[default]
    Stop,
    /// Steps that do not need the failed one go on.
    Continue,
}

/// When a step runs, given the steps it needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Every needed step succeeded (the default).
    #[default]
    Succeeded,
    /// At least one needed step failed.
    Failed,
    /// Whatever became of them.
    Always,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionStep {
    pub name: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub command: Vec<String>,
    /// Wait for it to end (default true); its failure fails the step.
    #[serde(default = "yes")]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

fn one() -> usize {
    1
}

/// The most steps a workflow may run at once.
const PARALLEL_MAX: usize = 64;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublishStep {
    pub routing_key: String,
    #[serde(default)]
    pub payload: Option<toml::Value>,
}

/// One step as the file gives it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default)]
    pub when: When,
    /// A command, run to its end (not in tmux); a non-zero exit fails the step.
    #[serde(default)]
    pub run: Vec<String>,
    #[serde(default)]
    pub session: Option<SessionStep>,
    /// Wait until the session of this name has ended.
    #[serde(default)]
    pub wait_for: Option<String>,
    #[serde(default)]
    pub publish: Option<PublishStep>,
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub timeout_secs: Option<f64>,
}

/// What a step does, checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Run(Vec<String>),
    Session(SessionStep),
    WaitFor(String),
    Publish(PublishStep),
}

impl Step {
    fn action(&self) -> Result<Action, String> {
        let mut kinds = Vec::new();
        if !self.run.is_empty() {
            kinds.push(Action::Run(self.run.clone()));
        }
        if let Some(s) = &self.session {
            kinds.push(Action::Session(s.clone()));
        }
        if let Some(w) = &self.wait_for {
            kinds.push(Action::WaitFor(w.clone()));
        }
        if let Some(p) = &self.publish {
            kinds.push(Action::Publish(p.clone()));
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => Err(format!(
                "step {:?} does nothing: give it one of run, session, wait_for, publish",
                self.id
            )),
            _ => Err(format!(
                "step {:?} does several things: give it one of run, session, wait_for, publish",
                self.id
            )),
        }
    }

    fn timeout(&self) -> Result<Duration, String> {
        candybar_core::time::checked_secs(
            self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
            0.1,
            TIMEOUT_MAX_SECS,
            &format!("step {:?} timeout_secs", self.id),
        )
    }
}

/// A workflow file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub on_failure: OnFailure,
    /// How many steps may run at once (branches whose needs are met start together).
    #[serde(default = "one")]
    pub parallel: usize,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

impl Workflow {
    /// Reads and checks a workflow: every step does one thing, ids are unique, `needs` name
    /// earlier-or-later steps that exist, and there is no cycle. Its steps come back in an order
    /// that runs each after what it needs.
    pub fn parse(text: &str, name: &str, path: &Path) -> Result<Self, WorkflowError> {
        let invalid = |reason: String| WorkflowError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let mut w: Self = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if w.name.is_empty() {
            name.clone_into(&mut w.name);
        }
        if w.steps.is_empty() {
            return Err(invalid("no steps: add [[step]] tables".into()));
        }
        if !(1..=PARALLEL_MAX).contains(&w.parallel) {
            return Err(invalid(format!(
                "parallel = {} is out of range: 1 to {PARALLEL_MAX} steps at once",
                w.parallel
            )));
        }
        let mut ids = HashSet::new();
        for s in &w.steps {
            if s.id.trim().is_empty() {
                return Err(invalid("a step has no id".into()));
            }
            if !ids.insert(s.id.as_str()) {
                return Err(invalid(format!("two steps are called {:?}", s.id)));
            }
            s.action().map_err(&invalid)?;
            s.timeout().map_err(&invalid)?;
        }
        for s in &w.steps {
            if let Some(n) = s.needs.iter().find(|n| !ids.contains(n.as_str())) {
                return Err(invalid(format!(
                    "step {:?} needs {n:?}, which is not a step",
                    s.id
                )));
            }
        }
        w.steps = order(&w.steps).map_err(invalid)?;
        Ok(w)
    }
}

/// `steps` in an order where each comes after what it needs (stable: file order otherwise).
fn order(steps: &[Step]) -> Result<Vec<Step>, String> {
    let mut done: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(steps.len());
    while out.len() < steps.len() {
        let next = steps.iter().find(|s| {
            !done.contains(s.id.as_str()) && s.needs.iter().all(|n| done.contains(n.as_str()))
        });
        let Some(s) = next else {
            let stuck: Vec<&str> = steps
                .iter()
                .filter(|s| !done.contains(s.id.as_str()))
                .map(|s| s.id.as_str())
                .collect();
            return Err(format!(
                "the steps {} need each other in a circle",
                stuck.join(", ")
            ));
        };
        done.insert(&s.id);
        out.push(s.clone());
    }
    Ok(out)
}

/// The workflows in `dir`: `NAME.toml` files.
pub fn list(dir: &Path) -> Vec<(String, Result<Workflow, WorkflowError>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let w = load_path(&p, &name);
            (name, w)
        })
        .collect()
}

fn load_path(path: &Path, name: &str) -> Result<Workflow, WorkflowError> {
    let text = std::fs::read_to_string(path).map_err(|e| WorkflowError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Workflow::parse(&text, name, path)
}

/// The workflow `name` (`NAME.toml` in `dir`, or a path to a file).
pub fn load(dir: &Path, name: &str) -> Result<Workflow, WorkflowError> {
    let as_path = Path::new(name);
    if as_path.extension().is_some_and(|x| x == "toml") && as_path.exists() {
        let stem = as_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        return load_path(as_path, &stem);
    }
    let clean = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    let path = dir.join(format!("{name}.toml"));
    if !clean || !path.exists() {
        let known: Vec<String> = list(dir).into_iter().map(|(n, _)| n).collect();
        return Err(WorkflowError::NotFound {
            name: name.to_owned(),
            dir: dir.to_owned(),
            known: if known.is_empty() {
                String::new()
            } else {
                format!(" (there are: {})", known.join(", "))
            },
        });
    }
    load_path(&path, name)
}

/// What became of a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed(String),
    /// Not run: what it needed did not go its way, or an earlier failure stopped the run.
    Skipped(String),
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Self::Succeeded => "completed",
            Self::Failed(_) => "failed",
            Self::Skipped(_) => "skipped",
        }
    }
}

/// A workflow event: `workflow.{run|step}.{what}` in a Bloodbank v1 envelope.
fn event(host: &str, event_type: &str, payload: Value) -> Outgoing {
    crate::events::envelope_v1(host, "workflow", event_type, payload, json!({}))
}

/// A step under way.
struct InFlight {
    index: usize,
    started: Instant,
    work: Work,
}

/// What a step under way waits for.
enum Work {
    Command {
        child: std::process::Child,
        cmd: Vec<String>,
        until: Instant,
        timeout: Duration,
    },
    Session {
        id: String,
        until: Instant,
        timeout: Duration,
    },
}

/// A run's bookkeeping: what each step came to, the failure policy, the progress lines.
struct Runner<'a> {
    w: &'a Workflow,
    run_id: &'a str,
    host: &'a str,
    outcomes: HashMap<String, Outcome>,
    order: Vec<(String, Outcome)>,
    stopped: bool,
    progress: &'a mut dyn FnMut(&str, &crate::store::SqliteStore),
    /// Steps not started yet, in file order (which runs each after what it needs).
    pending: Vec<usize>,
    /// Steps under way.
    flight: Vec<InFlight>,
    polled_sessions: Option<Instant>,
}

impl Runner<'_> {
    /// Starts what may start: the first ready steps in file order, up to `parallel` under way.
    fn start_ready(
        &mut self,
        sessions: &mut Sessions,
        default_dir: &Path,
    ) -> Result<(), SessionError> {
        let w = self.w;
        let mut k = 0;
        while k < self.pending.len() && self.flight.len() < w.parallel {
            let index = self.pending[k];
            let step = &w.steps[index];
            if !step.needs.iter().all(|n| self.outcomes.contains_key(n)) {
                k += 1;
                continue;
            }
            self.pending.remove(k);
            if let Some(why) = self.skip_reason(step) {
                self.finish(index, Outcome::Skipped(why), None, sessions)?;
                // What it decided may make an earlier pending step ready.
                k = 0;
                continue;
            }
            self.line(
                &format!("{}: {}", self.label(index), describe(step)),
                sessions,
            );
            sessions.store.queue(&[event(
                self.host,
                "workflow.step.started",
                json!({"workflow": w.name, "run_id": self.run_id, "step": step.id}),
            )])?;
            let began = Instant::now();
            match begin_step(step, sessions, default_dir, self.host)? {
                Ok(work) => self.flight.push(InFlight {
                    index,
                    started: began,
                    work,
                }),
                Err(o) => {
                    let secs = began.elapsed().as_secs_f64();
                    self.finish(index, o, Some(secs), sessions)?;
                    k = 0;
                }
            }
        }
        Ok(())
    }

    /// Why `step` does not run, given what became of the steps it needs and the policy.
    fn skip_reason(&self, step: &Step) -> Option<String> {
        let any_failed = step
            .needs
            .iter()
            .filter_map(|n| self.outcomes.get(n))
            .any(|o| !matches!(o, Outcome::Succeeded));
        // After a failure with on_failure = "stop", only steps meant for failures (and those
        // that run whatever happened) still start.
        if self.stopped && step.when == When::Succeeded {
            return Some("an earlier step failed (on_failure = \"stop\")".to_owned());
        }
        match step.when {
            When::Succeeded if any_failed => Some("a step it needs did not succeed".into()),
            When::Failed if !any_failed => Some("every step it needs succeeded".into()),
            _ => None,
        }
    }

    /// Looks at the steps under way (sessions at most every [`SESSION_POLL`]); whether one
    /// ended.
    fn poll(&mut self, sessions: &mut Sessions) -> Result<bool, SessionError> {
        let look_at_sessions = self
            .flight
            .iter()
            .any(|f| matches!(f.work, Work::Session { .. }))
            && self
                .polled_sessions
                .is_none_or(|t| t.elapsed() >= SESSION_POLL);
        if look_at_sessions {
            sessions.refresh()?;
            self.polled_sessions = Some(Instant::now());
        }
        let mut ended = false;
        let mut f = 0;
        while f < self.flight.len() {
            let outcome = match &mut self.flight[f].work {
                Work::Command {
                    child,
                    cmd,
                    until,
                    timeout,
                } => poll_command(child, cmd, *until, *timeout),
                Work::Session { id, until, timeout } if look_at_sessions => {
                    poll_session(sessions, id, *until, *timeout)?
                }
                Work::Session { .. } => None,
            };
            if let Some(o) = outcome {
                let done = self.flight.swap_remove(f);
                let secs = done.started.elapsed().as_secs_f64();
                self.finish(done.index, o, Some(secs), sessions)?;
                ended = true;
            } else {
                f += 1;
            }
        }
        Ok(ended)
    }

    fn label(&self, i: usize) -> String {
        format!("[{}/{}] {}", i + 1, self.w.steps.len(), self.w.steps[i].id)
    }

    fn line(&mut self, text: &str, sessions: &Sessions) {
        (self.progress)(text, &sessions.store);
    }

    /// Records how step `i` ended (`secs`: how long it ran, `None` when it did not): its event,
    /// its line, the policy.
    fn finish(
        &mut self,
        i: usize,
        o: Outcome,
        secs: Option<f64>,
        sessions: &mut Sessions,
    ) -> Result<(), SessionError> {
        let step = &self.w.steps[i];
        if let Some(secs) = secs {
            let mut payload = json!({"workflow": self.w.name, "run_id": self.run_id,
                "step": step.id, "duration_seconds": secs});
            if let Outcome::Failed(e) = &o {
                payload["error"] = json!(e);
            }
            sessions.store.queue(&[event(
                self.host,
                &format!("workflow.step.{}", o.word()),
                payload,
            )])?;
        }
        let label = self.label(i);
        match &o {
            Outcome::Succeeded => self.line(&format!("{label}: ✓ done"), sessions),
            Outcome::Failed(e) => {
                self.line(&format!("{label}: ✗ failed: {e}"), sessions);
                self.stopped |= self.w.on_failure == OnFailure::Stop;
            }
            Outcome::Skipped(why) => self.line(&format!("{label}: skipped ({why})"), sessions),
        }
        self.outcomes.insert(step.id.clone(), o.clone());
        self.order.push((step.id.clone(), o));
        Ok(())
    }
}

/// How often sessions under way are looked at (tmux is asked each time).
const SESSION_POLL: Duration = Duration::from_millis(250);

/// Runs `w`: each step after what it needs, as its `when` and the failure policy say, up to
/// `w.parallel` at once. Progress goes to `progress` (a line per change, with the outbox its
/// events wait in, to send them on) and on the bus. The outcome of each step, in the order they
/// ended.
pub fn run(
    w: &Workflow,
    sessions: &mut Sessions,
    default_dir: &Path,
    progress: &mut dyn FnMut(&str, &crate::store::SqliteStore),
) -> Result<Vec<(String, Outcome)>, SessionError> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let host = sessions.host.clone();
    let ids: Vec<&str> = w.steps.iter().map(|s| s.id.as_str()).collect();
    sessions.store.queue(&[event(
        &host,
        "workflow.run.started",
        json!({"workflow": w.name, "run_id": run_id, "steps": ids, "parallel": w.parallel}),
    )])?;
    let started = Instant::now();
    let mut runner = Runner {
        w,
        run_id: &run_id,
        host: &host,
        outcomes: HashMap::new(),
        order: Vec::new(),
        stopped: false,
        progress,
        pending: (0..w.steps.len()).collect(),
        flight: Vec::new(),
        polled_sessions: None,
    };
    while !runner.pending.is_empty() || !runner.flight.is_empty() {
        runner.start_ready(sessions, default_dir)?;
        if runner.flight.is_empty() {
            // Every pending step needs one that will never end: cannot happen after `order`.
            for index in std::mem::take(&mut runner.pending) {
                let why = Outcome::Skipped("what it needs never ran".into());
                runner.finish(index, why, None, sessions)?;
            }
            break;
        }
        if !runner.poll(sessions)? {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let order = runner.order;
    let failed = order
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .count();
    let word = if failed == 0 { "completed" } else { "failed" };
    sessions.store.queue(&[event(
        &host,
        &format!("workflow.run.{word}"),
        json!({"workflow": w.name, "run_id": run_id, "failed_steps": failed,
            "duration_seconds": started.elapsed().as_secs_f64()}),
    )])?;
    Ok(order)
}

fn describe(step: &Step) -> String {
    match step.action() {
        Ok(Action::Run(cmd)) => format!("running `{}`", cmd.join(" ")),
        Ok(Action::Session(s)) => format!("starting the session {}", s.name),
        Ok(Action::WaitFor(name)) => format!("waiting for the session {name} to end"),
        Ok(Action::Publish(p)) => format!("publishing {}", p.routing_key),
        Err(e) => e,
    }
}

/// Starts `step`: what to wait for, or its outcome at once (`Err`: it is over already).
fn begin_step(
    step: &Step,
    sessions: &mut Sessions,
    default_dir: &Path,
    host: &str,
) -> Result<Result<Work, Outcome>, SessionError> {
    let timeout = step.timeout().map_err(SessionError::Invalid)?;
    let until = Instant::now() + timeout;
    let dir = step.dir.clone().unwrap_or_else(|| default_dir.to_owned());
    let action = step.action().map_err(SessionError::Invalid)?;
    Ok(match action {
        Action::Run(cmd) => spawn_command(&cmd, &dir).map(|child| Work::Command {
            child,
            cmd,
            until,
            timeout,
        }),
        Action::Session(s) => {
            let provider = match s.provider.as_deref() {
                None if s.command.is_empty() => Provider::Claude,
                None => Provider::Custom,
                Some(p) => match Provider::parse(p) {
                    Some(p) => p,
                    None => return Ok(Err(Outcome::Failed(format!("unknown provider {p:?}")))),
                },
            };
            let started = sessions.start(StartRequest {
                id: None,
                name: s.name.clone(),
                provider,
                dir: s.dir.clone().unwrap_or(dir),
                prompt: s.prompt.clone(),
                command: s.command.clone(),
                metadata: json!({"workflow_step": step.id}),
                correlation_id: None,
                multiplexer: None,
            });
            match started {
                Err(e @ (SessionError::Store(_) | SessionError::Redis(_))) => return Err(e),
                Err(e) => Err(Outcome::Failed(e.to_string())),
                Ok(_) if !s.wait => Err(Outcome::Succeeded),
                Ok(session) => Ok(Work::Session {
                    id: session.id,
                    until,
                    timeout,
                }),
            }
        }
        Action::WaitFor(name) => match sessions.resolve(&name) {
            Ok(s) => Ok(Work::Session {
                id: s.id,
                until,
                timeout,
            }),
            Err(e @ (SessionError::Store(_) | SessionError::Redis(_))) => return Err(e),
            Err(e) => Err(Outcome::Failed(e.to_string())),
        },
        Action::Publish(p) => {
            let payload = p
                .payload
                .as_ref()
                .and_then(|v| serde_json::to_value(v).ok())
                .unwrap_or_else(|| json!({}));
            sessions
                .store
                .queue(&[event(host, &p.routing_key, payload)])?;
            Err(Outcome::Succeeded)
        }
    })
}

/// The session `id`'s outcome once it has ended: succeeded when it exited 0 (or was ended by a
/// person), failed otherwise or after `timeout`; `None` while it runs.
fn poll_session(
    sessions: &mut Sessions,
    id: &str,
    until: Instant,
    timeout: Duration,
) -> Result<Option<Outcome>, SessionError> {
    let Some(s) = sessions.get(id)? else {
        return Ok(Some(Outcome::Failed(format!("the session {id} is gone"))));
    };
    if !s.state.is_running() {
        return Ok(Some(match s.state {
            crate::model::SessionState::Terminated => Outcome::Succeeded,
            _ => Outcome::Failed(format!(
                "the session {} {}",
                s.name,
                s.reason.as_deref().unwrap_or("failed")
            )),
        }));
    }
    if Instant::now() >= until {
        return Ok(Some(Outcome::Failed(format!(
            "the session {} did not end within {timeout:?} (it goes on running)",
            s.name
        ))));
    }
    Ok(None)
}

/// Starts `cmd` in `dir` (not in tmux: its output goes where candybar's does).
fn spawn_command(cmd: &[String], dir: &Path) -> Result<std::process::Child, Outcome> {
    let Some((program, args)) = cmd.split_first() else {
        return Err(Outcome::Failed("an empty command".into()));
    };
    std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Outcome::Failed(format!("cannot run {program:?} in {}: {e}", dir.display())))
}

/// The command's outcome once it has exited (it is killed after `timeout`); `None` while it runs.
fn poll_command(
    child: &mut std::process::Child,
    cmd: &[String],
    until: Instant,
    timeout: Duration,
) -> Option<Outcome> {
    match child.try_wait() {
        Ok(Some(status)) if status.success() => Some(Outcome::Succeeded),
        Ok(Some(status)) => Some(Outcome::Failed(match status.code() {
            Some(c) => format!("`{}` exited with {c}", cmd.join(" ")),
            None => format!("`{}` was killed", cmd.join(" ")),
        })),
        Ok(None) if Instant::now() >= until => {
            let _ = child.kill();
            let _ = child.wait();
            Some(Outcome::Failed(format!(
                "`{}` did not finish within {timeout:?}; it was stopped",
                cmd.join(" ")
            )))
        }
        Ok(None) => None,
        Err(e) => Some(Outcome::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Workflow, String> {
        Workflow::parse(text, "w", Path::new("w.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn steps_run_after_what_they_need_and_bad_files_say_why() {
        let w = parse(
            r#"
            [[step]]
            id = "c"
            needs = ["b"]
            run = ["true"]
            [[step]]
            id = "a"
            run = ["true"]
            [[step]]
            id = "b"
            needs = ["a"]
            publish = { routing_key = "x.y", payload = { n = 1 } }
            "#,
        )
        .unwrap();
        let ids: Vec<&str> = w.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(w.name, "w");

        for (text, says) in [
            (
                "[[step]]\nid = \"a\"\nrun = [\"x\"]\nneeds = [\"b\"]\n[[step]]\nid = \"b\"\nrun = [\"y\"]\nneeds = [\"a\"]",
                "in a circle",
            ),
            (
                "[[step]]\nid = \"a\"\nneeds = [\"nope\"]\nrun = [\"x\"]",
                "needs \"nope\", which is not a step",
            ),
            (
                "[[step]]\nid = \"a\"\nrun = [\"x\"]\n[[step]]\nid = \"a\"\nrun = [\"y\"]",
                "two steps are called \"a\"",
            ),
            ("[[step]]\nid = \"a\"", "does nothing"),
            (
                "[[step]]\nid = \"a\"\nrun = [\"x\"]\nwait_for = \"s\"",
                "does several things",
            ),
            (
                "[[step]]\nid = \"a\"\nrun = [\"x\"]\ntimeout_secs = 1e99",
                "timeout_secs = 1e99 is out of range",
            ),
            (
                "[[step]]\nid = \"a\"\nrunn = [\"x\"]",
                "unknown field `runn`",
            ),
            ("[[step]\nid = ", "TOML parse error"),
            ("description = \"nothing\"", "no steps"),
            (
                "parallel = 0\n[[step]]\nid = \"a\"\nrun = [\"x\"]",
                "parallel = 0 is out of range",
            ),
            (
                "parallel = -1\n[[step]]\nid = \"a\"\nrun = [\"x\"]",
                "invalid value",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(e.starts_with("w.toml: "), "{e}");
        }
    }
}
