//! `ticket report`: a Markdown report with plots (PNG and SVG) from one or many `ticket imp` run folders.
use super::print_report;
use crate::error::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// IMP run folders (`ticket imp … -o RUN_DIR`); runs with identical settings except the seed are replicates
    /// (mean ± std; the initial weights may differ by seed), runs of different architectures are grouped apart.
    /// A sweep folder (`ticket sweep … -o SWEEP_DIR`) stands for its finished runs.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The folder for report.md and its figures.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let r = crate::lottery::report::write_imp_report(&args.runs, &args.output)?;
    print_report(json, &r, |r| {
        let mut out = String::new();
        if r.models > 1 {
            out += &format!(
                "note: the runs come from {} different models; each model's runs form their own groups with their own dense baseline\n",
                r.models
            );
        }
        for (i, g) in r.groups.iter().enumerate() {
            out += &format!("group {i}: {} ({} run(s), model {}, figures show level {})\n", g.label, g.runs.len(), g.arch, g.shown_level);
        }
        out + &format!("{}: {} figures (PNG + SVG)\n", r.markdown.display(), r.figures.len())
    });
    Ok(())
}
