//! The local executor: N tasks at a time on this machine, the cores divided among them.
use super::folder::{self, TaskState};
use super::spec::Plan;
use super::task::run_task;
use crate::error::{Result, WriteContext};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Which tasks a run works on: everything unfinished, and with `retry_failed` the failed ones too (their
/// failure record is moved aside first, so the log keeps the history and the runner starts them again).
pub fn todo(sweep_dir: &Path, plan: &Plan, retry_failed: bool) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for t in &plan.tasks {
        match folder::state(sweep_dir, t) {
            TaskState::Done { .. } | TaskState::Running { .. } => {}
            TaskState::Failed { .. } if !retry_failed => {}
            TaskState::Failed { .. } => {
                let dir = folder::task_dir(sweep_dir, t);
                std::fs::rename(dir.join(folder::FAILED), dir.join("failed.previous.json")).writing(dir.join(folder::FAILED))?;
                out.push(t.index);
            }
            _ => out.push(t.index),
        }
    }
    Ok(out)
}

/// Runs `indices` with `parallel` workers; `on_done(index, state)` is called as each finishes. Tasks that train
/// their own level 0 go first, the ones that can reuse a leader's ([`super::share::phases`]) after them.
pub fn run_local(
    sweep_dir: &Path,
    plan: &Plan,
    indices: &[usize],
    parallel: usize,
    exe: &Path,
    on_done: &(dyn Fn(usize, &TaskState) + Sync),
) -> Result<Vec<(usize, TaskState)>> {
    // One batch: each worker takes the next task when it is free.
    let batch = |indices: &[usize]| -> Result<Vec<(usize, TaskState)>> {
        let parallel = parallel.clamp(1, indices.len().max(1));
        let threads = crate::runtime::threads::per_worker(parallel);
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Result<TaskState>)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..parallel {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&index) = indices.get(i) else { break };
                    let r = run_task(sweep_dir, plan, index, exe, Some(threads));
                    if let Ok(state) = &r {
                        on_done(index, state);
                    }
                    results.lock().expect("no worker panics holding it").push((index, r));
                });
            }
        });
        results.into_inner().expect("workers joined").into_iter().map(|(i, r)| r.map(|s| (i, s))).collect()
    };
    let (first, then) = super::share::phases(plan, indices);
    let mut out = batch(&first)?;
    out.extend(batch(&then)?);
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}
