//! Running one task: the same code under every executor (a local worker thread, a Slurm array index, a
//! Kubernetes Indexed Job). A finished task is skipped, a killed one resumes (`ticket imp --resume`), a failed
//! one is left for `--retry-failed`.
use super::folder::{self, Finished, Running, TaskState};
use super::share;
use super::spec::{Plan, TaskDef};
use crate::error::{Context, Error, Result, WriteContext};
use crate::fsio::DirLock;
use crate::runtime::child::status_tied;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Lines of a failed task's log kept in failed.json.
const TAIL_LINES: usize = 12;

/// The variables a task index is read from, in order: Slurm's job array, a Kubernetes Indexed Job.
pub const INDEX_VARS: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

/// The task index from the scheduler's environment: the first of [`INDEX_VARS`] that holds a number (a
/// variable left over from another scheduler, set to something else, does not hide the one that does).
pub fn index_from_env() -> Option<usize> {
    INDEX_VARS.iter().find_map(|k| std::env::var(k).ok()?.trim().parse().ok())
}

/// The index of the task to run: the one given, else the scheduler's ([`index_from_env`]); the error names what
/// the environment holds.
pub fn resolve_index(given: Option<usize>) -> Result<usize> {
    given.or_else(index_from_env).ok_or_else(|| {
        let set: Vec<String> = INDEX_VARS.iter().filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v:?}"))).collect();
        let found = if set.is_empty() { String::new() } else { format!(" ({} is not a task index)", set.join(", ")) };
        Error::setting("index", format!("`task` needs `index`, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX{found}"))
    })
}

/// Runs task `index` of the plan in SWEEP_DIR with `exe` (the `ticket` binary). `threads`: ORT threads when
/// the spec does not fix them. Returns the state it left the task in.
pub fn run_task(sweep_dir: &Path, plan: &Plan, index: usize, exe: &Path, threads: Option<usize>) -> Result<TaskState> {
    let t =
        plan.tasks.get(index).ok_or_else(|| Error::input(sweep_dir, format!("has no task {index} (its plan has {})", plan.tasks.len())))?;
    let dir = folder::task_dir(sweep_dir, t);
    // The task writes only inside SWEEP_DIR: its folders must be folders, not links elsewhere.
    for p in [sweep_dir.join("tasks"), dir.clone(), dir.join(folder::RUN)] {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink() || !m.is_dir()) {
            return Err(Error::input(&p, "is a symbolic link or not a folder: a sweep's tasks run only inside its folder"));
        }
    }
    // One runner per task, even if a scheduler starts an index twice.
    let _lock = DirLock::acquire(&dir)?;
    if let s @ (TaskState::Done { .. } | TaskState::Failed { .. }) = folder::state(sweep_dir, t) {
        return Ok(s);
    }
    folder::write_json(&dir.join(folder::RUNNING), &Running { host: folder::hostname(), pid: std::process::id() })?;
    let log_path = dir.join(folder::LOG);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).writing(&log_path)?;
    let (mut cmd, resumed, leader) = command(sweep_dir, plan, t, exe, threads);
    let shared = leader.map(|l| format!(" (level 0 from task {l})")).unwrap_or_default();
    writeln!(&log, "# {} on {}{shared}: {}", if resumed { "resume" } else { "start" }, folder::hostname(), shown(&cmd))
        .writing(&log_path)?;
    let started = Instant::now();
    cmd.stdin(Stdio::null()).stdout(log.try_clone().at(&log_path)?).stderr(log);
    // Tied to this runner: killed with it, the task's imp does not go on holding its run's lock, which would
    // make the rerun of this task find the run in use and record it as failed.
    let status = status_tied(cmd).map_err(|e| Error::Runtime(format!("{}: cannot start: {e}", exe.display())))?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(dir.join(folder::RUNNING));
    let summary = folder::run_dir(sweep_dir, t).join(crate::lottery::imp::SUMMARY);
    match status.code() {
        // imp: 0 = a ticket within the gate, 1 = none within it; both are finished runs with results.
        Some(code @ (0 | 1)) if summary.is_file() => {
            folder::write_json(&dir.join(folder::DONE), &Finished { exit_code: code, seconds, tail: Vec::new() })?;
            Ok(TaskState::Done { exit_code: code })
        }
        code => {
            let exit_code = code.unwrap_or(-1);
            let tail = tail(&log_path, TAIL_LINES);
            folder::write_json(&dir.join(folder::FAILED), &Finished { exit_code, seconds, tail: tail.clone() })?;
            Ok(TaskState::Failed { exit_code, tail })
        }
    }
}

/// `ticket imp ARGS -o RUN` for a new task, `ticket imp --resume RUN` for a started one (its run.json keeps the
/// settings, the thread count and a shared level 0 included); true when it resumes. A new task whose group's
/// leader has finished level 0 starts from that dense model ([`share`]): the leader's index comes third.
fn command(sweep_dir: &Path, plan: &Plan, t: &TaskDef, exe: &Path, threads: Option<usize>) -> (Command, bool, Option<usize>) {
    let run = folder::run_dir(sweep_dir, t);
    let mut cmd = Command::new(exe);
    cmd.arg(super::spec::COMMAND);
    let resumed = run.join("run.json").exists();
    let mut leader = None;
    if resumed {
        cmd.arg("--resume").arg(&run);
    } else {
        match share::shared_level_0(sweep_dir, plan, t) {
            Some((l, trained)) => {
                leader = Some(l);
                cmd.args(share::follower_argv(&t.argv, &trained));
            }
            None => {
                cmd.args(&t.argv);
            }
        }
        if let (Some(n), false) = (threads, t.sets_threads()) {
            cmd.arg("--threads").arg(n.to_string());
        }
        cmd.arg("-o").arg(&run);
    }
    (cmd, resumed, leader)
}

fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

/// The last `n` lines of a log (bounded: only its end is read).
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return Vec::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 << 10)));
    let lines: Vec<String> = std::io::BufReader::new(f).lines().map_while(|l| l.ok()).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}
