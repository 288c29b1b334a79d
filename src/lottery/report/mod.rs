//! `ticket report`: IMP run folders read, replicates grouped, and a Markdown report written with its figures.
//! It sits with the experiments because it reads their run folders; the plotting itself is `report::chart`.
pub mod figures;
pub mod markdown;
pub mod runs;
pub mod stats;

use crate::error::{Context, Error, Result, WriteContext};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const REPORT_MD: &str = "report.md";

#[derive(Clone, Debug, Serialize)]
pub struct ReportGroup {
    pub label: String,
    /// The method in words, as the figures' legends name the group.
    pub method: String,
    pub arch: String,
    /// The initial model's parameter count (null when its file cannot be read any more).
    pub params: Option<u64>,
    pub runs: Vec<PathBuf>,
    /// The level the per-layer, per-size, per-category, TIDE and loss figures show.
    pub shown_level: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImpReport {
    pub markdown: PathBuf,
    /// Each figure's PNG (an SVG of the same name sits beside it).
    pub figures: Vec<PathBuf>,
    pub groups: Vec<ReportGroup>,
    /// How many different models the runs come from (more than one: grouped by model, said in the report).
    pub models: usize,
}

/// Reads IMP run folders, groups replicates, and writes REPORT_DIR/report.md with its figures (PNG + SVG).
/// Every run is read and every figure rendered before anything is written.
pub fn write_imp_report(run_dirs: &[PathBuf], out: &Path) -> Result<ImpReport> {
    if run_dirs.is_empty() {
        return Err(Error::Input("ticket report needs at least one run folder".into()));
    }
    // One run named twice (`base base ./base/`, or a run and the sweep holding it) is one replicate, not
    // several; folders are compared by their canonical path.
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for d in run_dirs {
        for r in run_folders(d)? {
            if seen.insert(std::fs::canonicalize(&r).unwrap_or_else(|_| r.clone())) {
                dirs.push(r);
            }
        }
    }
    refuse_output_inside(out, run_dirs.iter().chain(&dirs))?;
    let runs = runs::read_runs(&dirs)?;
    let groups = runs::group_runs(runs);
    let stats: Vec<stats::GroupStats> = groups.iter().map(stats::group_stats).collect();
    let figures = figures::figures(&stats);
    let rendered = figures.iter().map(|f| f.plot.render(&f.name)).collect::<Result<Vec<_>>>()?;
    let md = markdown::render(&stats, &figures);
    std::fs::create_dir_all(out).writing(out)?;
    let mut pngs = Vec::new();
    for (f, (png, svg)) in figures.iter().zip(&rendered) {
        let p = out.join(format!("{}.png", f.name));
        crate::fsio::write_atomic(&p, png)?;
        crate::fsio::write_atomic(&out.join(format!("{}.svg", f.name)), svg.as_bytes())?;
        pngs.push(p);
    }
    let markdown = out.join(REPORT_MD);
    crate::fsio::write_atomic(&markdown, md.as_bytes())?;
    let mut models: Vec<&str> = stats.iter().map(|g| g.arch.as_str()).collect();
    models.sort();
    models.dedup();
    Ok(ImpReport {
        markdown,
        figures: pngs,
        models: models.len(),
        groups: groups
            .iter()
            .zip(&stats)
            .map(|(g, s)| ReportGroup {
                label: g.label.clone(),
                method: g.method.clone(),
                arch: g.arch.clone(),
                params: g.runs[0].params,
                runs: g.runs.iter().map(|r| r.dir.clone()).collect(),
                shown_level: s.shown,
            })
            .collect(),
    })
}

/// The report folder must not be, or lie inside, a folder it reads: its files would land among a run's (and a
/// later report would read them back).
/// Both as written and with links resolved: `RUN/level_1/report` is inside the run even when `level_1` is a link.
fn refuse_output_inside<'a>(out: &Path, inputs: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
    let targets = [lexical(out)?, canonical_target(out)?];
    for input in inputs {
        let dirs = [lexical(input).ok(), std::fs::canonicalize(input).ok()];
        if targets.iter().any(|t| dirs.iter().flatten().any(|d| t.starts_with(d))) {
            return Err(Error::input(out, format!("is, or is inside, the input {}: give the report a folder of its own", input.display())));
        }
    }
    Ok(())
}

/// `path` absolute, with `.` and `..` resolved by name (links left as they are).
fn lexical(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in std::path::absolute(path).at(path)?.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `path` made absolute with its existing ancestors' symbolic links resolved (the folder may not exist yet).
fn canonical_target(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).at(path)?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(existing).is_err() {
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_os_string());
                existing = p;
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    for n in rest.iter().rev() {
        if n == ".." {
            out.pop();
        } else if n != "." {
            out.push(n);
        }
    }
    Ok(out)
}

/// A run folder as given, or a sweep folder's finished runs (in task order; unfinished tasks are left out,
/// so a report can be drawn while a sweep runs). A sweep with nothing finished is an error.
fn run_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    use crate::lottery::sweep::{folder, TaskState};
    if !folder::is_sweep_dir(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let plan = folder::load(dir)?;
    let done: Vec<PathBuf> =
        plan.tasks.iter().filter(|t| matches!(folder::state(dir, t), TaskState::Done { .. })).map(|t| folder::run_dir(dir, t)).collect();
    if done.is_empty() {
        return Err(Error::input(
            dir,
            format!("no task of this sweep has finished yet ({} tasks; see ticket sweep --status)", plan.tasks.len()),
        ));
    }
    Ok(done)
}
