//! The one way a command turns a model into files: import it with its masks, write every output asked (the
//! pruned ONNX, its masks, its compact form), check the written model in ONNX Runtime when asked — and on any
//! failure once writing has begun, remove every output this call wrote, so a failed command leaves nothing
//! behind (prune, mask apply, transfer, and the ticket an IMP run exports).
use super::verify::{verify_channels, verify_export};
use crate::error::{Error, Result};
use crate::model::{Masks, ModelState};
use crate::runtime::ort_check::OutputDiff;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Serialize)]
pub struct Sizes {
    pub input_bytes: u64,
    pub output_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact_ratio: Option<f64>,
    /// Of the compact file, the bytes of the graph skeleton (small models are mostly graph).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact_graph_bytes: Option<u64>,
}

/// A model read for export: the state with its masks applied, and every file read for it (the model, its
/// external data, the masks), which no output may overwrite.
pub struct Imported {
    pub state: ModelState,
    pub inputs: Vec<PathBuf>,
}

impl Imported {
    pub fn input_paths(&self) -> Vec<&Path> {
        self.inputs.iter().map(PathBuf::as_path).collect()
    }
}

/// Imports `model` (ONNX or compact) and applies `masks` to it when given.
pub fn import_masked(model: &Path, masks: Option<&Path>) -> Result<Imported> {
    let mut state = ModelState::import(model)?;
    let mut inputs = vec![model.to_path_buf()];
    inputs.extend(masks.map(Path::to_path_buf));
    inputs.extend(state.source.external_files());
    if let Some(m) = masks {
        state.apply_masks(Masks::load(m)?, m)?;
    }
    Ok(Imported { state, inputs })
}

/// Where an export goes: the model, and optionally its masks (safetensors) and its compact form.
#[derive(Clone, Copy)]
pub struct Outputs<'a> {
    pub model: &'a Path,
    pub masks: Option<&'a Path>,
    pub compact: Option<&'a Path>,
}

/// How the written model is checked in ONNX Runtime.
pub enum Verify<'a> {
    No,
    /// Against the exported state's source graph with its masks applied (a weight ticket).
    Masked,
    /// Against this model: the input with the removed channels zeroed (a channel ticket).
    Zeroed(&'a ModelState),
}

pub struct Exported {
    pub sizes: Sizes,
    /// The output-by-output comparison, when verified.
    pub verify: Option<Vec<OutputDiff>>,
}

/// Writes `state` to every output (none may overwrite one of `inputs`), then verifies the written model as asked.
/// All or nothing: when a write or the check fails, the outputs this call wrote are removed.
pub fn export(state: &ModelState, out: Outputs, inputs: &[&Path], verify: Verify) -> Result<Exported> {
    let all: Vec<&Path> = [Some(out.model), out.masks, out.compact].into_iter().flatten().collect();
    for (i, a) in all.iter().enumerate() {
        crate::fsio::ensure_distinct(a, inputs)?;
        if all[..i].iter().any(|b| crate::fsio::same_file(b, a) || b == a) {
            return Err(Error::input(a, "the same path is given for two outputs"));
        }
    }
    let data = crate::onnx::external::model_dir(out.model)
        .join(format!("{}.data", out.model.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let written: Vec<&Path> = all.iter().copied().chain(Some(data.as_path()).filter(|d| !d.exists())).collect();
    let result = write_and_verify(state, out, verify);
    if result.is_err() {
        remove_outputs(&written);
    }
    result
}

fn write_and_verify(state: &ModelState, out: Outputs, verify: Verify) -> Result<Exported> {
    let saved = super::write_onnx(state, out.model)?;
    if let Some(m) = out.masks {
        state.masks.save(m, &[("model", state.path().display().to_string())])?;
    }
    let packed = out.compact.map(|c| super::compact::pack(&state.source, &state.changed_initializers()?, c)).transpose()?;
    let verify = match verify {
        Verify::No => None,
        Verify::Masked => Some(verify_export(state, out.model)?),
        Verify::Zeroed(zeroed) => Some(verify_channels(zeroed, out.model)?),
    };
    let sizes = Sizes {
        input_bytes: input_size(state),
        output_bytes: saved.total(),
        compact_bytes: packed.as_ref().map(|p| p.compact_bytes),
        compact_ratio: packed.as_ref().map(|p| p.compact_bytes as f64 / saved.total() as f64),
        compact_graph_bytes: packed.as_ref().map(|p| p.graph_bytes),
    };
    Ok(Exported { sizes, verify })
}

fn input_size(state: &ModelState) -> u64 {
    let ext: u64 = state.source.external.values().map(|b| b.len() as u64).sum();
    std::fs::metadata(state.path()).map(|m| m.len()).unwrap_or(0) + ext
}

/// `ticket mask apply`'s report: a model with a mask file applied, exported.
#[derive(Serialize)]
pub struct MasksApplied {
    pub output: PathBuf,
    pub masked_tensors: usize,
    pub pruned: usize,
    pub sizes: Sizes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Vec<OutputDiff>>,
}

/// Imports `model`, applies `masks` and exports it (checked against the masked source in ONNX Runtime when
/// `verify`): `ticket mask apply`, and an IMP run's ticket from its level.
pub fn apply_masks(model: &Path, masks: &Path, out: Outputs, verify: bool) -> Result<MasksApplied> {
    let m = import_masked(model, Some(masks))?;
    let verify = if verify { Verify::Masked } else { Verify::No };
    let done = export(&m.state, out, &m.input_paths(), verify)?;
    Ok(MasksApplied {
        output: out.model.to_path_buf(),
        masked_tensors: m.state.masks.map.len(),
        pruned: m.state.masks.total() - m.state.masks.kept(),
        sizes: done.sizes,
        verify: done.verify,
    })
}

/// Removes outputs of a command that failed after writing them (missing ones are fine).
fn remove_outputs(paths: &[&Path]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::{export, import_masked, Outputs, Verify};
    use std::path::Path;

    #[test]
    fn a_failure_after_the_first_write_leaves_no_output() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet18.onnx");
        let m = import_masked(&fixture, None).unwrap();
        let t = tempfile::tempdir().unwrap();
        let (model, compact) = (t.path().join("o.onnx"), t.path().join("missing/o.tkt"));
        let out = Outputs { model: &model, masks: None, compact: Some(&compact) };
        // The model is written first; the compact form then fails (no such folder): the model goes too.
        assert!(export(&m.state, out, &m.input_paths(), Verify::No).is_err());
        assert!(!model.exists() && !compact.exists());
        let out = Outputs { compact: None, ..out };
        let done = export(&m.state, out, &m.input_paths(), Verify::No).unwrap();
        assert!(model.is_file() && done.verify.is_none() && done.sizes.output_bytes > 0);
    }
}
