//! What `ticket sweep` reports: each task's folder, cell and state (from the task folders and the Slurm queue),
//! the job arrays submitted, and the sbatch script of a dry run.
use super::folder::{self, TaskState};
use super::slurm;
use super::spec::Plan;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize)]
pub struct TaskRow {
    pub index: usize,
    pub hash: String,
    pub cell: BTreeMap<String, String>,
    /// The task whose dense model (level 0) this one starts from ([`super::share`]); absent: it trains its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level_0_from: Option<usize>,
    #[serde(flatten)]
    pub state: TaskState,
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    pub sweep_dir: PathBuf,
    pub name: String,
    pub tasks: Vec<TaskRow>,
    /// Submitted job arrays (--slurm): job id and the task indices it holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub submitted: Vec<slurm::Job>,
    /// The sbatch script (--slurm --dry-run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

impl SweepReport {
    /// The state of every task of `plan` in `dir`, refined by the Slurm queue.
    pub fn new(dir: &Path, plan: &Plan, submitted: Vec<slurm::Job>, script: Option<String>) -> SweepReport {
        let queue = slurm::queue_states(dir);
        let leaders = super::share::leaders(plan);
        let tasks = plan
            .tasks
            .iter()
            .map(|t| TaskRow {
                index: t.index,
                hash: t.hash.clone(),
                cell: t.cell.clone(),
                level_0_from: leaders[t.index],
                state: slurm::refine(folder::state(dir, t), queue.get(&t.index)),
            })
            .collect();
        SweepReport { sweep_dir: dir.to_path_buf(), name: plan.name.clone(), tasks, submitted, script }
    }

    /// The indices of the tasks that failed.
    pub fn failed(&self) -> Vec<usize> {
        self.tasks.iter().filter(|t| matches!(t.state, TaskState::Failed { .. })).map(|t| t.index).collect()
    }
}
