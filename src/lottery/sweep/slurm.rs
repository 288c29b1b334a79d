//! The Slurm executor: one job array per submission, one array index per task (the index is the task's index
//! in the plan, so a resubmission of some tasks keeps their numbers). Each index runs
//! `ticket sweep --task SWEEP_DIR`, which reads SLURM_ARRAY_TASK_ID (or a Kubernetes Indexed Job's
//! JOB_COMPLETION_INDEX) and runs the task like the local executor does.
use super::folder::TaskState;
use super::spec::Plan;
use crate::error::{Error, Result, WriteContext};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SCRIPT: &str = "sweep.sbatch";
pub const JOBS: &str = "jobs.json";

#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// At most this many array tasks at once (`--array=…%K`).
    pub max_parallel: Option<usize>,
    pub gres: Option<String>,
    pub time: Option<String>,
    pub cpus_per_task: Option<usize>,
}

impl SlurmOptions {
    /// Each value becomes a line of the sbatch script: one word, no line break (which would add a line of the
    /// user's choosing to the script), and no zero counts.
    pub fn check(&self) -> Result<()> {
        for (setting, v) in [("partition", &self.partition), ("gres", &self.gres), ("time", &self.time)] {
            if let Some(v) = v {
                if v.is_empty() || v.len() > 256 || v.chars().any(|c| c.is_control() || c.is_whitespace() || c == '#') {
                    return Err(Error::setting(setting, format!("`{setting}` {:?} must be one word: no spaces, line breaks or #", v)));
                }
            }
        }
        for (setting, v) in [("max_parallel", self.max_parallel), ("cpus_per_task", self.cpus_per_task)] {
            if v == Some(0) {
                return Err(Error::setting(setting, format!("`{setting}` must be at least 1")));
            }
        }
        Ok(())
    }
}

/// A submitted array: its job id and the task indices it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub indices: Vec<usize>,
}

pub fn slurm_dir(sweep_dir: &Path) -> PathBuf {
    sweep_dir.join("slurm")
}

/// `0-3,7,9-10`: Slurm's array range syntax.
pub fn array_ranges(indices: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        out.push(if i == j { indices[i].to_string() } else { format!("{}-{}", indices[i], indices[j]) });
        i = j + 1;
    }
    out.join(",")
}

/// The job's name: the sweep's name (squeue shows it).
pub fn job_name(plan: &Plan) -> String {
    format!("ticket-{}", plan.name)
}

/// The sbatch script for `indices` of the plan, started once job `after` has ended (however it ended: a task
/// whose leader failed trains its own level 0). Paths are absolute: the job may start in another folder.
pub fn script(sweep_dir: &Path, plan: &Plan, indices: &[usize], exe: &Path, o: &SlurmOptions, after: Option<&str>) -> String {
    let logs = slurm_dir(sweep_dir);
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name={}\n", job_name(plan));
    let throttle = o.max_parallel.map(|k| format!("%{k}")).unwrap_or_default();
    s += &format!("#SBATCH --array={}{throttle}\n", array_ranges(indices));
    s += &format!("#SBATCH --output={}/%A_%a.out\n", logs.display());
    if let Some(p) = &o.partition {
        s += &format!("#SBATCH --partition={p}\n");
    }
    if let Some(g) = &o.gres {
        s += &format!("#SBATCH --gres={g}\n");
    }
    if let Some(t) = &o.time {
        s += &format!("#SBATCH --time={t}\n");
    }
    if let Some(c) = o.cpus_per_task {
        s += &format!("#SBATCH --cpus-per-task={c}\n");
    }
    if let Some(job) = after {
        s += &format!("#SBATCH --dependency=afterany:{job}\n");
    }
    s += "# One task of the sweep per array index; it skips finished work and resumes killed work.\n";
    s += &format!("exec {} sweep --task {}\n", quote(&exe.to_string_lossy()), quote(&sweep_dir.to_string_lossy()));
    s
}

fn quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `sbatch` on PATH, or the environment error (exit 3) that says so.
pub fn require(tool: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file()).ok_or_else(|| {
        Error::Runtime(format!("{tool} not found on PATH: --slurm needs a Slurm client (or run the sweep here with --local N)"))
    })
}

/// Submits `todo` as at most two arrays ([`super::share::phases`]): the tasks that train level 0, then, once
/// that array has ended, the tasks that reuse its dense models.
pub fn submit_all(sweep_dir: &Path, plan: &Plan, todo: &[usize], exe: &Path, o: &SlurmOptions) -> Result<Vec<Job>> {
    let (first, then) = super::share::phases(plan, todo);
    let mut jobs = Vec::new();
    if !first.is_empty() {
        jobs.push(submit(sweep_dir, plan, &first, exe, o, None)?);
    }
    if !then.is_empty() {
        let after = jobs.first().map(|j| j.job_id.clone());
        jobs.push(submit(sweep_dir, plan, &then, exe, o, after.as_deref())?);
    }
    Ok(jobs)
}

/// What [`submit_all`] would submit: the scripts, the second naming the first's job id as FIRST_JOB_ID.
pub fn preview(sweep_dir: &Path, plan: &Plan, todo: &[usize], exe: &Path, o: &SlurmOptions) -> String {
    let (first, then) = super::share::phases(plan, todo);
    let mut out = script(sweep_dir, plan, &first, exe, o, None);
    if !then.is_empty() {
        out += "\n# Then, reusing their dense models, once that array has ended:\n";
        out += &script(sweep_dir, plan, &then, exe, o, Some("FIRST_JOB_ID"));
    }
    out
}

/// Writes the script and submits it; returns the job id. Nothing is recorded unless sbatch accepted it.
pub fn submit(sweep_dir: &Path, plan: &Plan, indices: &[usize], exe: &Path, o: &SlurmOptions, after: Option<&str>) -> Result<Job> {
    let sbatch = require("sbatch")?;
    let dir = slurm_dir(sweep_dir);
    std::fs::create_dir_all(&dir).writing(&dir)?;
    let path = dir.join(SCRIPT);
    crate::fsio::write_atomic(&path, script(sweep_dir, plan, indices, exe, o, after).as_bytes())?;
    let out =
        Command::new(&sbatch).arg("--parsable").arg(&path).output().map_err(|e| Error::Runtime(format!("{}: {e}", sbatch.display())))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Runtime(crate::error::one_line(&format!("sbatch refused {}: {}", path.display(), msg.trim()))));
    }
    // --parsable prints `jobid[;cluster]`.
    let job_id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap_or_default().to_string();
    if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Runtime(format!("sbatch printed no job id ({:?})", String::from_utf8_lossy(&out.stdout).trim())));
    }
    let job = Job { job_id, indices: indices.to_vec() };
    let mut jobs = read_jobs(sweep_dir);
    jobs.push(job.clone());
    super::folder::write_json(&dir.join(JOBS), &jobs)?;
    Ok(job)
}

pub fn read_jobs(sweep_dir: &Path) -> Vec<Job> {
    crate::fsio::read_limited(&slurm_dir(sweep_dir).join(JOBS), 16 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The queue's view of this sweep's array tasks: task index → PENDING/RUNNING/…, from `squeue` (one line per
/// array index with `-r`). Jobs that left the queue are absent; the task folders tell how they ended.
pub fn queue_states(sweep_dir: &Path) -> BTreeMap<usize, String> {
    let jobs = read_jobs(sweep_dir);
    let mut out = BTreeMap::new();
    if jobs.is_empty() || require("squeue").is_err() {
        return out;
    }
    let ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    // squeue fails on ids that left the queue when asked for them by -j; asking for all of the user's jobs
    // and keeping ours does not.
    let Ok(o) = Command::new("squeue").args(["-h", "-r", "-o", "%i|%T"]).output() else { return out };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let Some((id, state)) = line.trim().split_once('|') else { continue };
        let Some((job, index)) = id.split_once('_') else { continue };
        if ids.contains(&job) {
            if let Ok(i) = index.parse::<usize>() {
                out.insert(i, state.to_string());
            }
        }
    }
    out
}

/// A task's state with the queue's word on it: queued or running there, whatever its files say so far.
pub fn refine(state: TaskState, queue: Option<&String>) -> TaskState {
    match (state, queue.map(String::as_str)) {
        (s @ (TaskState::Done { .. } | TaskState::Failed { .. } | TaskState::Running { .. }), _) => s,
        (_, Some("PENDING" | "CONFIGURING" | "REQUEUED")) => TaskState::Queued,
        (_, Some("RUNNING" | "COMPLETING")) => TaskState::Running { host: "slurm".into(), pid: 0 },
        (s, _) => s,
    }
}
