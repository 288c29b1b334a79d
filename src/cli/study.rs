//! `ticket study NAME MODEL…`: one of the paper's studies as a sweep spec (DIR/study.toml), run here
//! (DIR/sweep, resumable) and reported (DIR/report/report.md). `--print-spec` prints the spec instead, for
//! `ticket sweep SPEC --slurm` on a cluster.
use super::print_report;
use crate::error::{Context, Error, Result, WriteContext};
use crate::lottery::sweep::study::{fixed_settings, study_spec, StudyInputs, StudyReport};
use crate::lottery::sweep::{folder, local, parse_spec, TaskState};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The study: modules, rounds, scope, rewind, early-bird, controls, floor, width or transfer.
    pub name: String,
    /// The detector's initial weights (ONNX); the width study takes one per backbone width.
    pub models: Vec<PathBuf>,
    /// Training data (COCO json; images next to it in `images`).
    #[arg(long)]
    pub coco: Option<PathBuf>,
    /// Validation data (COCO json) every level is scored on.
    #[arg(long)]
    pub val_coco: Option<PathBuf>,
    /// Replicates: one run per seed and setting (mean ± std in the report).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 3])]
    pub seeds: Vec<u64>,
    /// Dense training steps, and every level's.
    #[arg(long, default_value_t = 1200)]
    pub steps: u64,
    /// The sparsity of the studies that hold it fixed (modules, rounds, rewind, early-bird).
    #[arg(long, default_value_t = 0.8)]
    pub sparsity: f64,
    /// Any other `ticket imp` setting for every run, as KEY=VALUE (a TOML value: `lr=0.02`, `scope="layer"`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Runs at a time on this machine.
    #[arg(long, default_value_t = 1)]
    pub local: usize,
    /// Print the study's sweep spec and stop.
    #[arg(long)]
    pub print_spec: bool,
    /// DIR: study.toml, sweep/ (the runs) and report/ (and prep/ for the transfer study).
    #[arg(short = 'o', long = "output", required_unless_present = "print_spec")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub transfer: super::study_transfer::TransferArgs,
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let fixed = fixed_settings(a.coco.as_deref(), a.val_coco.as_deref(), &a.set)?;
    let inputs = StudyInputs { models: a.models.clone(), fixed, seeds: a.seeds.clone(), steps: a.steps, sparsity: a.sparsity };
    let spec = if a.name == "transfer" {
        // Its spec names the files its preparation writes under DIR.
        let out = a.out.as_ref().ok_or_else(|| {
            Error::Input("study transfer prepares its detectors in DIR first: give -o DIR (with --print-spec too)".into())
        })?;
        let dir = std::path::absolute(out).at(out)?;
        let exe = std::env::current_exe().map_err(|e| Error::Runtime(format!("cannot find the ticket binary: {e}")))?;
        crate::lottery::sweep::transfer::transfer_study(&a.transfer.inputs(), &inputs, &dir, &exe)?
    } else {
        study_spec(&a.name, &inputs)?
    };
    if a.local == 0 {
        return Err(Error::Input("--local N needs N of at least 1".into()));
    }
    let opts = super::imp::Args::option_table();
    // Checked like a user's spec (the same checks), so a study never starts with a task that cannot run.
    let plan =
        parse_spec(&spec, &a.name, &std::env::current_dir().unwrap_or_default(), &opts, crate::lottery::sweep::spec::DEFAULT_MAX_TASKS)
            .map_err(|m| Error::Input(format!("study {}: {m}", a.name)))?;
    if a.print_spec {
        super::print_output(&spec);
        return Ok(());
    }
    let dir =
        std::path::absolute(a.out.as_ref().expect("clap requires -o without --print-spec")).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::create_dir_all(&dir).writing(&dir)?;
    let spec_path = dir.join("study.toml");
    let sweep_dir = dir.join("sweep");
    folder::open_or_create(&sweep_dir, &plan)?;
    crate::fsio::write_atomic(&spec_path, spec.as_bytes())?;
    let exe = std::env::current_exe().map_err(|e| Error::Runtime(format!("cannot find the ticket binary: {e}")))?;
    let todo = local::todo(&sweep_dir, &plan, false)?;
    super::sweep::run_here(&sweep_dir, &plan, &todo, a.local, &exe, "run", json)?;
    let failed: Vec<usize> =
        plan.tasks.iter().filter(|t| matches!(folder::state(&sweep_dir, t), TaskState::Failed { .. })).map(|t| t.index).collect();
    let report = if failed.len() < plan.tasks.len() {
        Some(crate::lottery::report::write_imp_report(std::slice::from_ref(&sweep_dir), &dir.join("report"))?)
    } else {
        None
    };
    let r = StudyReport {
        study: a.name.clone(),
        spec: spec_path,
        sweep_dir: sweep_dir.clone(),
        tasks: plan.tasks.len(),
        failed: failed.clone(),
        report,
    };
    print_report(json, &r, render);
    if !failed.is_empty() {
        return Err(Error::Reported(format!("{} run(s) failed: ticket sweep --status {}", failed.len(), sweep_dir.display())));
    }
    Ok(())
}

fn render(r: &StudyReport) -> String {
    let mut out = format!("study {}: {} runs in {}\n", r.study, r.tasks, r.sweep_dir.display());
    if let Some(rep) = &r.report {
        out += &format!("report: {} ({} groups, {} figures)\n", rep.markdown.display(), rep.groups.len(), rep.figures.len());
    }
    out
}
