//! Validation AP over training steps (`val_every`): every N steps of a level's training the current weights are
//! scored on the validation set as the finished level is (tract, the same reference), and the level's final scores
//! close the curve. Kept in `level_L/val_curve.jsonl`, one line per step, so convergence is judged on held-out AP
//! rather than on the training loss, and dense's plateau can be read off its curve.
use super::score::evaluate;
use super::ImpConfig;
use crate::data::DataSpec;
use crate::error::Result;
use crate::fsio::write_atomic;
use crate::lottery::level::Scores;
use crate::model::ModelState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const VAL_CURVE: &str = "val_curve.jsonl";
/// A curve holds a line per evaluation; far fewer than this.
const CURVE_MAX: u64 = 64 << 20;

/// One point of the curve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CurvePoint {
    pub step: u64,
    /// IoU type (or `top1`) → scores, as the level's row holds them.
    pub scores: BTreeMap<String, Scores>,
}

/// The points of `ldir`'s curve, by step (none when the level has no curve).
pub fn read(ldir: &Path) -> Result<Vec<CurvePoint>> {
    let path = ldir.join(VAL_CURVE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let points: Vec<CurvePoint> = crate::fsio::read_jsonl(&path, CURVE_MAX, "a validation point")?;
    let by_step: BTreeMap<u64, CurvePoint> = points.into_iter().map(|p| (p.step, p)).collect();
    Ok(by_step.into_values().collect())
}

/// Adds a point unless the curve has that step (a resumed level passes its checkpoint's step again).
pub(super) fn add(ldir: &Path, point: CurvePoint) -> Result<()> {
    let mut points = read(ldir)?;
    if points.iter().any(|p| p.step == point.step) {
        return Ok(());
    }
    points.push(point);
    points.sort_by_key(|p| p.step);
    let mut text = String::new();
    for p in &points {
        text += &serde_json::to_string(p).expect("serialises");
        text.push('\n');
    }
    write_atomic(&ldir.join(VAL_CURVE), text.as_bytes())
}

/// Whether step `step` of a level's `total` is a point of the curve: every `val_every` steps before the end (the
/// end's point is the level's own scores). Without annotations the reference is made from the trained dense model,
/// so dense's own curve cannot be scored against it.
pub(super) fn due(config: &ImpConfig, dir: &Path, step: u64, total: u64) -> bool {
    let every = config.val_every;
    every > 0
        && step > 0
        && step < total
        && step.is_multiple_of(every)
        && (!matches!(config.val, DataSpec::Unlabeled { .. }) || dir.join(super::score::VAL_REFERENCE).is_file())
}

/// Scores `state` (a level's weights at `step`) and adds the point.
pub(super) fn score(config: &ImpConfig, dir: &Path, ldir: &Path, step: u64, state: ModelState) -> Result<()> {
    if read(ldir)?.iter().any(|p| p.step == step) {
        return Ok(());
    }
    let (scores, _, _) = evaluate(config, dir, state)?;
    add(ldir, CurvePoint { step, scores })
}
