//! The export check: the written model and its reference, run in ONNX Runtime on the same inputs, output by
//! output. The reference is the source graph with the state's masks applied in memory (a weight ticket), or the
//! input model with the removed channels zeroed (a channel ticket: the same function in a narrower graph).
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::runtime::ort_check::{compare, default_inputs, run, OutputDiff};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Largest difference the check accepts between a weight ticket and its masked source: the same graph with the
/// same weights, so only ORT's own nondeterminism is left.
pub const MASKED_VERIFY_TOL: f64 = 1e-5;

/// Largest difference accepted between a narrow channel ticket and the zeroed dense one: the same sums without
/// their zero terms, in a different order (kernels block differently at other widths).
pub const CHANNEL_VERIFY_TOL: f64 = 1e-3;

/// Runs `output` and the source model with the state's masks applied in memory, in ONNX Runtime.
pub fn verify_export(state: &ModelState, output: &Path) -> Result<Vec<OutputDiff>> {
    let reference = state.source.encode_inline(&state.changed_initializers()?)?;
    within(run_both(output, &reference, state.path())?, MASKED_VERIFY_TOL, output, "the masked input model")
}

/// Runs the written channel ticket and the zeroed dense model in ONNX Runtime on the same input and compares.
pub fn verify_channels(zeroed: &ModelState, output: &Path) -> Result<Vec<OutputDiff>> {
    let reference = zeroed.source.encode_inline(&Default::default())?;
    let diffs = run_both(output, &reference, zeroed.path())?;
    within(diffs, CHANNEL_VERIFY_TOL, output, "the input model with the removed channels zeroed")
}

/// The comparison when every output has the reference's shape and is within `tol` of it; else a failed check
/// naming the first output that is not.
fn within(diffs: Vec<OutputDiff>, tol: f64, output: &Path, reference: &str) -> Result<Vec<OutputDiff>> {
    if let Some(d) = diffs.iter().find(|d| !d.same_shape || d.max_abs_diff > tol) {
        return Err(Error::Check(format!(
            "{}: output '{}' differs from {reference} (max abs diff {})",
            output.display(),
            d.name,
            d.max_abs_diff
        )));
    }
    Ok(diffs)
}

/// The written model (ONNX or compact) and the encoded reference (named `reference_path` in errors), run on the
/// written model's default inputs.
fn run_both(output: &Path, reference: &[u8], reference_path: &Path) -> Result<Vec<OutputDiff>> {
    let exported = crate::onnx::compact::load_onnx_or_compact(output)?;
    let inputs = default_inputs(&exported, 128)?;
    let a = run(&exported.encode_inline(&Default::default())?, &inputs, &output.display().to_string())?;
    let b = run(reference, &inputs, &reference_path.display().to_string())?;
    Ok(compare(&a, &b))
}

/// `ticket check`'s report: a model run in ONNX Runtime, compared output by output with a reference (or with
/// itself, which only proves that it runs).
#[derive(Serialize)]
pub struct CheckReport {
    pub model: PathBuf,
    pub outputs: Vec<OutputDiff>,
    pub passed: bool,
}

/// Runs `model` (ONNX or compact) in ONNX Runtime on default inputs (dynamic dimensions `dynamic_dim`); with
/// `reference` (its `masks` applied in memory), compares the two within `tolerance`.
pub fn check_model(
    model: &Path,
    reference: Option<&Path>,
    masks: Option<&Path>,
    dynamic_dim: usize,
    tolerance: f64,
) -> Result<CheckReport> {
    let onnx = crate::onnx::compact::load_onnx_or_compact(model)?;
    let inputs = default_inputs(&onnx, dynamic_dim)?;
    let out = run(&onnx.encode_inline(&Default::default())?, &inputs, &model.display().to_string())?;
    let diffs = match reference {
        Some(r) => {
            let state = ModelState::load(r, masks)?;
            let reference = state.source.encode_inline(&state.changed_initializers()?)?;
            compare(&out, &run(&reference, &inputs, &r.display().to_string())?)
        }
        None => compare(&out, &out),
    };
    let passed = diffs.iter().all(|d| d.same_shape && d.max_abs_diff <= tolerance);
    Ok(CheckReport { model: model.to_path_buf(), outputs: diffs, passed })
}
