//! `ticket bench sparse`: the break-even curve of the sparse kernels against tract's dense ones, per kernel shape
//! of the full-size R-CNN graphs (`crate::bench::sparse`).
use super::{print_report, render_table};
use crate::bench::sparse::{Settings, SparseBench};
use crate::error::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Side of the square canvas the backbone shapes are taken at (a multiple of 32).
    #[arg(long, default_value_t = 320)]
    pub size: usize,
    /// Densities (fractions of non-zero weights) the sparse kernel runs at.
    #[arg(long, value_delimiter = ',', default_value = "1,0.7,0.5,0.35,0.25,0.15,0.1,0.05,0.02")]
    pub densities: Vec<f64>,
    /// Threads for both (tract's matmuls and the sparse kernels); default one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Timed runs per point (after one warm-up); the median is kept.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Only the shapes whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Also draw the curves: FILE.png and FILE.svg.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl Args {
    fn settings(&self) -> Settings {
        Settings { size: self.size, densities: self.densities.clone(), threads: self.threads, repeat: self.repeat, only: self.only.clone() }
    }
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let report = crate::bench::sparse::run(&args.settings(), &mut crate::cli::progress_bar(0, "bench", json))?;
    if let Some(path) = &args.plot {
        crate::bench::sparse::write_plot(&report, path)?;
    }
    print_report(json, &report, |r| render(r, &args.densities));
    Ok(())
}

fn render(r: &SparseBench, densities: &[f64]) -> String {
    let mut header = vec!["layer".to_string(), "dense ms".into(), "GFLOP/s".into()];
    header.extend(densities.iter().map(|d| format!("{:.0}%", 100.0 * d)));
    header.push("break-even".into());
    let rows: Vec<Vec<String>> = r
        .curves
        .iter()
        .map(|c| {
            let mut row = vec![c.layer.clone(), format!("{:.2}", c.dense_ms), format!("{:.0}", c.dense_gflops)];
            row.extend(c.points.iter().map(|p| format!("{:.2}×", p.speedup)));
            row.push(c.break_even.map(|b| format!("{:.0}%", 100.0 * b)).unwrap_or_else(|| "never".into()));
            row
        })
        .collect();
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "speed-up of the sparse kernel ({}) over tract dense, by density; {} threads, {} px\n{}",
        r.isa,
        r.threads,
        r.size,
        render_table(&h, &rows)
    )
}
