//! `ticket sweep`: a grid of IMP runs from a spec, run here (`--local N`) or as a Slurm job array (`--slurm`),
//! with `--status`, `--retry-failed` and `--dry-run`; `ticket report SWEEP_DIR` aggregates it.
use super::{print_report, render_table};
use crate::error::{Error, Result};
use crate::lottery::sweep::slurm::{self, SlurmOptions};
use crate::lottery::sweep::spec::cell_label;
use crate::lottery::sweep::{folder, local, task, Plan, SweepReport, TaskState};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("mode").args(["spec", "status", "retry_failed"])))]
#[command(group(clap::ArgGroup::new("executor").args(["local", "slurm"])))]
pub struct Args {
    /// The sweep spec (TOML): `[fixed]` options of `ticket imp` and a `[grid]` of values; every cell is a task.
    pub spec: Option<PathBuf>,
    /// SWEEP_DIR: one folder per task (named by a hash of its settings), reused by later runs of the same spec.
    #[arg(short = 'o', long = "output", requires = "spec")]
    pub out: Option<PathBuf>,
    /// Run N tasks at a time on this machine, the cores divided among them (the default executor, N = 1).
    #[arg(long, value_name = "N")]
    pub local: Option<usize>,
    /// Submit the unfinished tasks as a Slurm job array (sbatch), one array index per task.
    #[arg(long)]
    pub slurm: bool,
    #[command(flatten)]
    pub slurm_opts: SlurmArgs,
    /// Print the plan (and the sbatch script with --slurm) without running or submitting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Show each task of SWEEP_DIR: pending, queued, running, interrupted, done or failed (from the task
    /// folders and squeue). Exit 1 when a task failed.
    #[arg(long, value_name = "SWEEP_DIR")]
    pub status: Option<PathBuf>,
    /// Run the failed tasks of SWEEP_DIR again (with --local N or --slurm), and the unfinished ones.
    #[arg(long, value_name = "SWEEP_DIR")]
    pub retry_failed: Option<PathBuf>,
    /// Run one task of SWEEP_DIR (the job array's entry point): the index is --index, else SLURM_ARRAY_TASK_ID,
    /// else JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
    #[arg(long, value_name = "SWEEP_DIR", hide = true, conflicts_with = "mode")]
    pub task: Option<PathBuf>,
    #[arg(long, requires = "task", hide = true)]
    pub index: Option<usize>,
    /// Refuse a spec that expands to more tasks than this (each task is a whole IMP run).
    #[arg(long, value_name = "N", default_value_t = crate::lottery::sweep::spec::DEFAULT_MAX_TASKS)]
    pub max_tasks: usize,
}

#[derive(clap::Args, Debug)]
pub struct SlurmArgs {
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// At most K array tasks run at once (`--array=…%K`).
    #[arg(long, requires = "slurm")]
    pub max_parallel: Option<usize>,
    /// Generic resources per task, e.g. gpu:1 (then set `device = "cuda"` in the spec).
    #[arg(long, requires = "slurm")]
    pub gres: Option<String>,
    /// Time limit per task (HH:MM:SS); a task that hits it resumes when resubmitted.
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// CPUs per task (ORT threads follow SLURM_CPUS_PER_TASK unless the spec sets `threads`).
    #[arg(long, requires = "slurm")]
    pub cpus_per_task: Option<usize>,
}

impl SlurmArgs {
    fn options(&self) -> SlurmOptions {
        SlurmOptions {
            partition: self.partition.clone(),
            max_parallel: self.max_parallel,
            gres: self.gres.clone(),
            time: self.time.clone(),
            cpus_per_task: self.cpus_per_task,
        }
    }
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::Runtime(format!("cannot find the ticket binary: {e}")))?;
    if let Some(dir) = &a.task {
        let plan = folder::load_checked(dir, &super::imp::Args::option_table())?;
        let index = task::resolve_index(a.index)?;
        let threads = std::env::var("SLURM_CPUS_PER_TASK").ok().and_then(|v| v.parse().ok());
        let state = task::run_task(dir, &plan, index, &exe, threads)?;
        crate::fsio::stderr_line(format_args!("task {index}: {}", state.name()));
        return match state {
            TaskState::Failed { exit_code, .. } => Err(Error::Check(format!(
                "task {index} failed (exit {exit_code}); see {}",
                folder::task_dir(dir, &plan.tasks[index]).join(folder::LOG).display()
            ))),
            _ => Ok(()),
        };
    }
    if let Some(dir) = &a.status {
        let plan = folder::load(dir)?;
        return print_sweep(json, SweepReport::new(dir, &plan, Vec::new(), None));
    }
    let (dir, plan, retry) = match (&a.spec, &a.retry_failed) {
        (Some(spec), _) => {
            let out = a.out.as_ref().ok_or_else(|| Error::Input("give -o SWEEP_DIR for the sweep's task folders".into()))?;
            (out.clone(), crate::lottery::sweep::read_spec(spec, &super::imp::Args::option_table(), a.max_tasks)?, false)
        }
        (None, Some(dir)) => (dir.clone(), folder::load_checked(dir, &super::imp::Args::option_table())?, true),
        (None, None) => return Err(Error::Input("give SPEC.toml -o SWEEP_DIR, --status SWEEP_DIR or --retry-failed SWEEP_DIR".into())),
    };
    let dir = std::path::absolute(&dir).map_err(|e| Error::io(&dir, e))?;
    // Refused before anything is written or submitted: bad executor options, a missing scheduler, a folder of
    // another spec.
    a.slurm_opts.options().check()?;
    if a.local == Some(0) {
        return Err(Error::Input("--local N needs N of at least 1".into()));
    }
    if a.slurm && !a.dry_run {
        slurm::require("sbatch")?;
    }
    if a.dry_run {
        // Nothing is written: only a folder that already exists is checked against the spec.
        if folder::is_sweep_dir(&dir) {
            folder::open_or_create(&dir, &plan)?;
        }
        let indices: Vec<usize> =
            (0..plan.tasks.len()).filter(|&i| !matches!(folder::state(&dir, &plan.tasks[i]), TaskState::Done { .. })).collect();
        let script = (a.slurm && !indices.is_empty()).then(|| slurm::preview(&dir, &plan, &indices, &exe, &a.slurm_opts.options()));
        let r = SweepReport::new(&dir, &plan, Vec::new(), script);
        print_report(json, &r, render_report);
        return Ok(());
    }
    folder::open_or_create(&dir, &plan)?;
    // Neither executor takes a task the queue already holds.
    let queue = slurm::queue_states(&dir);
    let todo: Vec<usize> = local::todo(&dir, &plan, retry)?.into_iter().filter(|i| !queue.contains_key(i)).collect();
    if a.slurm {
        let submitted = slurm::submit_all(&dir, &plan, &todo, &exe, &a.slurm_opts.options())?;
        if !json {
            for j in &submitted {
                crate::fsio::stderr_line(format_args!(
                    "submitted job array {} ({} task(s): {})",
                    j.job_id,
                    j.indices.len(),
                    slurm::array_ranges(&j.indices)
                ));
            }
        }
        print_report(json, &SweepReport::new(&dir, &plan, submitted, None), render_report);
        return Ok(());
    }
    let parallel = a.local.unwrap_or(1);
    run_here(&dir, &plan, &todo, parallel, &exe, "task", json)?;
    print_sweep(json, SweepReport::new(&dir, &plan, Vec::new(), None))
}

/// The local executor with a progress bar and a line per finished task (`what` names them: task, run).
pub(crate) fn run_here(dir: &Path, plan: &Plan, todo: &[usize], parallel: usize, exe: &Path, what: &str, json: bool) -> Result<()> {
    let bar = super::progress(todo.len() as u64, &format!("{what}s"), json);
    let on_done = |i: usize, s: &TaskState| {
        bar.inc(1);
        if !json {
            bar.suspend(|| crate::fsio::stderr_line(format_args!("{what} {i} ({}): {}", plan.tasks[i].label(), s.name())));
        }
    };
    local::run_local(dir, plan, todo, parallel, exe, &on_done)?;
    bar.finish_and_clear();
    Ok(())
}

/// Prints the report; exit 1 when a task failed.
fn print_sweep(json: bool, r: SweepReport) -> Result<()> {
    print_report(json, &r, render_report);
    let failed = r.failed();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Reported(format!(
            "{} task(s) failed ({}): ticket sweep --retry-failed {}",
            failed.len(),
            slurm::array_ranges(&failed),
            r.sweep_dir.display()
        )))
    }
}

fn render_report(r: &SweepReport) -> String {
    let rows: Vec<Vec<String>> = r
        .tasks
        .iter()
        .map(|t| {
            let dense = t.level_0_from.map_or_else(|| "trains".to_string(), |l| format!("task {l}'s"));
            vec![t.index.to_string(), t.hash.clone(), t.state.name().to_string(), dense, cell_label(&t.cell)]
        })
        .collect();
    let mut out = format!("sweep {} in {}\n", r.name, r.sweep_dir.display());
    out += &render_table(&["Task", "Folder", "State", "Dense model", "Settings"], &rows);
    for t in &r.tasks {
        if let TaskState::Failed { exit_code, tail } = &t.state {
            out += &format!("task {} failed (exit {exit_code}); its log ends:\n", t.index);
            for l in tail {
                out += &format!("  | {l}\n");
            }
        }
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for t in &r.tasks {
        match counts.iter_mut().find(|(n, _)| n == t.state.name()) {
            Some((_, c)) => *c += 1,
            None => counts.push((t.state.name().into(), 1)),
        }
    }
    out += &format!("{}\n", counts.iter().map(|(n, c)| format!("{c} {n}")).collect::<Vec<_>>().join(", "));
    if let Some(s) = &r.script {
        out += &format!("\nsbatch script (not submitted):\n{s}");
    }
    out
}
