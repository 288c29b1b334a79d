//! `ticket check`: run a model in ONNX Runtime; with a reference, compare the two output by output.
use super::{print_report, render_table};
use crate::error::{Error, Result};
use crate::export::CheckReport;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub model: PathBuf,
    /// A reference model to compare with (e.g. the dense model).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Masks applied to the reference in memory before it runs.
    #[arg(long, requires = "reference")]
    pub masks: Option<PathBuf>,
    /// Size used for dynamic input dimensions.
    #[arg(long, default_value_t = 128)]
    pub dynamic_dim: usize,
    /// Largest absolute difference accepted.
    #[arg(long, default_value_t = 1e-5)]
    pub tolerance: f64,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let report =
        crate::export::check_model(&args.model, args.reference.as_deref(), args.masks.as_deref(), args.dynamic_dim, args.tolerance)?;
    print_report(json, &report, render);
    if !report.passed {
        return Err(Error::Reported(format!(
            "{}: outputs differ from the reference by more than {}",
            args.model.display(),
            args.tolerance
        )));
    }
    Ok(())
}

fn render(r: &CheckReport) -> String {
    let rows: Vec<Vec<String>> =
        r.outputs.iter().map(|d| vec![d.name.clone(), format!("{:?}", d.shape), format!("{:e}", d.max_abs_diff)]).collect();
    render_table(&["Output", "Shape", "Max abs diff"], &rows) + if r.passed { "passed\n" } else { "FAILED\n" }
}
