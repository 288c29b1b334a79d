//! Export: the user's graph with pruned (or trained) initializers replaced and nothing else changed, plus a
//! compact form for edge storage (written here; read by `onnx::compact`).
pub mod compact;

use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::onnx::SavedSizes;
use serde::Serialize;
use std::path::Path;

/// Writes `state`'s weights into the source graph at `out` (atomically; the input is never touched).
pub fn write_onnx(state: &ModelState, out: &Path) -> Result<SavedSizes> {
    state.source.save_with(out, &state.changed_initializers()?)
}

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

pub fn input_size(state: &ModelState) -> u64 {
    let ext: u64 = state.source.external.values().map(|b| b.len() as u64).sum();
    std::fs::metadata(state.path()).map(|m| m.len()).unwrap_or(0) + ext
}

/// Writes every output the options ask for, checking first that none overwrites an input.
pub fn write_outputs(
    state: &ModelState,
    output: &Path,
    masks_out: Option<&Path>,
    compact: Option<&Path>,
    inputs: &[&Path],
) -> Result<Sizes> {
    let all: Vec<&Path> = [Some(output), masks_out, compact].into_iter().flatten().collect();
    for (i, a) in all.iter().enumerate() {
        crate::fsio::ensure_distinct(a, inputs)?;
        if all[..i].iter().any(|b| crate::fsio::same_file(b, a) || b == a) {
            return Err(Error::input(a, "the same path is given for two outputs"));
        }
    }
    // All or nothing: when a later output fails, the ones this call already wrote are removed, so a failed
    // command never leaves a partial set of outputs behind.
    let data = crate::onnx::external::model_dir(output)
        .join(format!("{}.data", output.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let written: Vec<&Path> = all.iter().copied().chain(Some(data.as_path()).filter(|d| !d.exists())).collect();
    let result = (|| {
        let saved = crate::export::write_onnx(state, output)?;
        if let Some(m) = masks_out {
            state.masks.save(m, &[("model", state.path().display().to_string())])?;
        }
        let packed = compact.map(|c| crate::export::compact::pack(&state.source, &state.changed_initializers()?, c)).transpose()?;
        Ok((saved, packed))
    })();
    let (saved, packed) = result.inspect_err(|_| remove_outputs(&written))?;
    let input_bytes = input_size(state);
    Ok(Sizes {
        input_bytes,
        output_bytes: saved.total(),
        compact_bytes: packed.as_ref().map(|p| p.compact_bytes),
        compact_ratio: packed.as_ref().map(|p| p.compact_bytes as f64 / saved.total() as f64),
        compact_graph_bytes: packed.as_ref().map(|p| p.graph_bytes),
    })
}

/// Removes outputs of a command that failed after writing them (missing ones are fine).
pub fn remove_outputs(paths: &[&Path]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}
