//! SWEEP_DIR's layout and each task's state, read from its files (whichever executor ran it):
//!
//! - `sweep.json`: the plan (every task's settings and arguments);
//! - `tasks/HASH/task.json`: one task's settings; `run/` its IMP run folder; `log.txt` the command's output;
//! - `tasks/HASH/running.json` while a runner works on it (host and pid), `done.json` when the command
//!   finished (exit 0: a ticket within the gate, or 1: none within it), `failed.json` when it failed (its exit
//!   code and the log's last lines);
//! - `slurm/`: the array script and the submitted job ids.
use super::spec::{Plan, TaskDef};
use crate::error::{Context, Error, Result, WriteContext};
use crate::fsio::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const PLAN: &str = "sweep.json";
pub const TASK: &str = "task.json";
pub const DONE: &str = "done.json";
pub const FAILED: &str = "failed.json";
pub const RUNNING: &str = "running.json";
pub const LOG: &str = "log.txt";
pub const RUN: &str = "run";

pub fn task_dir(sweep_dir: &Path, t: &TaskDef) -> PathBuf {
    sweep_dir.join("tasks").join(&t.hash)
}

pub fn run_dir(sweep_dir: &Path, t: &TaskDef) -> PathBuf {
    task_dir(sweep_dir, t).join(RUN)
}

pub fn is_sweep_dir(dir: &Path) -> bool {
    dir.join(PLAN).is_file()
}

/// Reads SWEEP_DIR/sweep.json, checked ([`Plan::check`]): every task folder it names is SWEEP_DIR/tasks/HASH.
pub fn load(sweep_dir: &Path) -> Result<Plan> {
    let path = sweep_dir.join(PLAN);
    if !path.is_file() {
        return Err(Error::input(sweep_dir, "not a sweep folder (no sweep.json; make one with ticket sweep SPEC.toml -o SWEEP_DIR)"));
    }
    let bytes = crate::fsio::read_limited(&path, 64 << 20)?;
    let plan: Plan = serde_json::from_slice(&bytes).context(&path, "not a sweep plan")?;
    plan.check().at(&path)?;
    Ok(plan)
}

/// [`load`], and every task's arguments checked against its settings ([`Plan::check_arguments`]): what runs
/// the tasks reads the plan this way.
pub fn load_checked(sweep_dir: &Path, opts: &dyn super::CommandOptions) -> Result<Plan> {
    let plan = load(sweep_dir)?;
    plan.check_arguments(opts).at(sweep_dir.join(PLAN))?;
    Ok(plan)
}

/// Creates SWEEP_DIR for the plan, or checks that the existing one was made from the same spec.
pub fn open_or_create(sweep_dir: &Path, plan: &Plan) -> Result<()> {
    if sweep_dir.join(PLAN).exists() {
        let old = load(sweep_dir)?;
        if old.spec_hash != plan.spec_hash {
            return Err(Error::input(
                sweep_dir,
                format!(
                    "was made from another spec (`{}`, {} tasks, spec hash {}; this one: `{}`, {} tasks, {}): use a new SWEEP_DIR",
                    old.name,
                    old.tasks.len(),
                    old.spec_hash,
                    plan.name,
                    plan.tasks.len(),
                    plan.spec_hash
                ),
            ));
        }
        return Ok(());
    }
    if sweep_dir.exists() && std::fs::read_dir(sweep_dir).at(sweep_dir)?.next().is_some() {
        return Err(Error::input(sweep_dir, "exists and is not a sweep folder: give a new or empty folder"));
    }
    for t in &plan.tasks {
        let dir = task_dir(sweep_dir, t);
        std::fs::create_dir_all(&dir).writing(&dir)?;
        write_json(&dir.join(TASK), t)?;
    }
    // Last: a folder with sweep.json is complete.
    write_json(&sweep_dir.join(PLAN), plan)
}

pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    write_atomic(path, (serde_json::to_string_pretty(v).expect("serialises") + "\n").as_bytes())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = crate::fsio::read_limited(path, 1 << 20).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finished {
    pub exit_code: i32,
    pub seconds: f64,
    /// The last lines of the task's log (failed tasks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Running {
    pub host: String,
    pub pid: u32,
}

/// A task's state as its files tell it; the Slurm executor refines `Pending`/`Interrupted` with the queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TaskState {
    /// Not started.
    Pending,
    /// Waiting in the scheduler's queue.
    Queued,
    Running {
        host: String,
        pid: u32,
    },
    /// Started and stopped before finishing (killed): the next run resumes it.
    Interrupted,
    Done {
        exit_code: i32,
    },
    Failed {
        exit_code: i32,
        tail: Vec<String>,
    },
}

impl TaskState {
    pub fn name(&self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Queued => "queued",
            TaskState::Running { .. } => "running",
            TaskState::Interrupted => "interrupted",
            TaskState::Done { .. } => "done",
            TaskState::Failed { .. } => "failed",
        }
    }
}

pub fn state(sweep_dir: &Path, t: &TaskDef) -> TaskState {
    let dir = task_dir(sweep_dir, t);
    if let Some(d) = read_json::<Finished>(&dir.join(DONE)) {
        return TaskState::Done { exit_code: d.exit_code };
    }
    if let Some(f) = read_json::<Finished>(&dir.join(FAILED)) {
        return TaskState::Failed { exit_code: f.exit_code, tail: f.tail };
    }
    if let Some(r) = read_json::<Running>(&dir.join(RUNNING)) {
        // A runner on this host that is gone was killed; one on another host is believed (the queue decides).
        if r.host != hostname() || Path::new(&format!("/proc/{}", r.pid)).exists() {
            return TaskState::Running { host: r.host, pid: r.pid };
        }
        return TaskState::Interrupted;
    }
    if dir.join(RUN).exists() || dir.join(LOG).exists() {
        TaskState::Interrupted
    } else {
        TaskState::Pending
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}
