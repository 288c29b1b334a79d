//! Export: the user's graph with pruned (or trained) initializers replaced and nothing else changed, plus a
//! compact form for edge storage.
pub mod compact;

use crate::error::Result;
use crate::model::ModelState;
use crate::onnx::SavedSizes;
use std::path::Path;

/// Writes `state`'s weights into the source graph at `out` (atomically; the input is never touched).
pub fn write_onnx(state: &ModelState, out: &Path) -> Result<SavedSizes> {
    state.source.save_with(out, &state.changed_initializers()?)
}
