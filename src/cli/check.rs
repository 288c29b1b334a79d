//! `ticket check`: run a model in ONNX Runtime; with a reference, compare the two output by output.
use super::{emit, table};
use crate::error::{Error, Result};
use crate::model::{Masks, ModelState};
use crate::runtime::ort_check::{self, OutputDiff};
use serde::Serialize;
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

#[derive(Serialize)]
struct CheckReport {
    model: PathBuf,
    outputs: Vec<OutputDiff>,
    passed: bool,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let model = crate::onnx::compact::load_onnx_or_compact(&args.model)?;
    let inputs = ort_check::default_inputs(&model, args.dynamic_dim)?;
    let out = ort_check::run(&model.encode_inline(&Default::default())?, &inputs, &args.model.display().to_string())?;
    let diffs = match &args.reference {
        Some(r) => {
            let mut state = ModelState::import(r)?;
            if let Some(m) = &args.masks {
                state.apply_masks(Masks::load(m)?, m)?;
            }
            let reference = state.source.encode_inline(&state.changed_initializers()?)?;
            ort_check::compare(&out, &ort_check::run(&reference, &inputs, &r.display().to_string())?)
        }
        None => ort_check::compare(&out, &out),
    };
    let passed = diffs.iter().all(|d| d.same_shape && d.max_abs_diff <= args.tolerance);
    let report = CheckReport { model: args.model.clone(), outputs: diffs, passed };
    emit(json, &report, |r| {
        let rows: Vec<Vec<String>> =
            r.outputs.iter().map(|d| vec![d.name.clone(), format!("{:?}", d.shape), format!("{:e}", d.max_abs_diff)]).collect();
        table(&["Output", "Shape", "Max abs diff"], &rows) + if r.passed { "passed\n" } else { "FAILED\n" }
    });
    if !passed {
        return Err(Error::Reported(format!(
            "{}: outputs differ from the reference by more than {}",
            args.model.display(),
            args.tolerance
        )));
    }
    Ok(())
}
