//! `ticket report`: IMP run folders read, replicates grouped, and a Markdown report written with its figures.
//! It sits with the experiments because it reads their run folders; the plotting itself is `report::plot`.
pub mod markdown;
pub mod plots;
pub mod runs;
pub mod stats;

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub const REPORT_MD: &str = "report.md";

#[derive(Clone, Debug, Serialize)]
pub struct ReportGroup {
    pub label: String,
    pub arch: String,
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
    let mut dirs = Vec::new();
    for d in run_dirs {
        dirs.extend(run_folders(d)?);
    }
    let runs = runs::read_runs(&dirs)?;
    let groups = runs::group_runs(runs);
    let stats: Vec<stats::GroupStats> = groups.iter().map(stats::group_stats).collect();
    let figures = plots::figures(&stats);
    let rendered = figures.iter().map(|f| f.plot.render(&f.name)).collect::<Result<Vec<_>>>()?;
    let md = markdown::render(&stats, &figures);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
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
            .map(|(g, s)| ReportGroup { label: g.label.clone(), arch: g.arch.clone(), runs: g.runs.iter().map(|r| r.dir.clone()).collect(), shown_level: s.shown })
            .collect(),
    })
}

/// A run folder as given, or a sweep folder's finished runs (in task order; unfinished tasks are left out,
/// so a report can be drawn while a sweep runs). A sweep with nothing finished is an error.
fn run_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    use crate::lottery::sweep::{folder, TaskState};
    if !folder::is_sweep_dir(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    let plan = folder::load(dir)?;
    let done: Vec<PathBuf> = plan.tasks.iter().filter(|t| matches!(folder::state(dir, t), TaskState::Done { .. })).map(|t| folder::run_dir(dir, t)).collect();
    if done.is_empty() {
        return Err(Error::input(dir, format!("no task of this sweep has finished yet ({} tasks; see ticket sweep --status)", plan.tasks.len())));
    }
    Ok(done)
}
