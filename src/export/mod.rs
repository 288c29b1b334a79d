//! Export: the user's graph with pruned (or trained) initializers replaced and nothing else changed, plus a
//! compact form for edge storage (written here; read by `onnx::compact`); every output written through one path (`outputs`) and checked in ONNX
//! Runtime against its reference (`verify`).
pub mod compact;
mod outputs;
mod verify;

pub use outputs::{apply_masks, export, import_masked, Exported, Imported, MasksApplied, Outputs, Sizes, Verify};
pub use verify::{check_model, verify_channels, verify_export, CheckReport, CHANNEL_VERIFY_TOL, MASKED_VERIFY_TOL};

use crate::error::Result;
use crate::model::ModelState;
use crate::onnx::SavedSizes;
use std::path::Path;

/// Writes `state`'s weights into the source graph at `out` (atomically; the input is never touched).
pub fn write_onnx(state: &ModelState, out: &Path) -> Result<SavedSizes> {
    state.source.save_with(out, &state.changed_initializers()?)
}
