//! Without annotations, the reference is the dense model itself: its confident detections become a ground truth.
use crate::detect::pseudo_gt::pseudo_gt_json;
use crate::detect::results::CocoResult;
use crate::error::{Error, Result};
use crate::eval::CocoGt;
use std::path::{Path, PathBuf};

/// The dense model's confident detections as a COCO ground truth, built in memory (`label` names it in
/// errors: a path the user gave, never a temporary file). Its categories are every class the model has, not
/// only those the dense model found: the candidate's detections of another class are then unmatched detections
/// of a category without reference objects, as COCO scores them, instead of an error. Every geometry the dense
/// model gave is kept, so one reference serves each IoU type.
pub fn pseudo_ground_truth(
    label: &Path,
    images: &[(u64, PathBuf)],
    dense: &[CocoResult],
    min_score: f64,
    num_classes: usize,
) -> Result<CocoGt> {
    let (gt, n) = pseudo_gt_json(images, dense, min_score, num_classes)?;
    if n == 0 {
        return Err(Error::setting_at(
            label,
            "agreement_score",
            format!(
                "no detection scores at least `agreement_score` {min_score} on the {} images: there is no reference to agree with (lower it, or give `coco`)",
                images.len()
            ),
        ));
    }
    CocoGt::from_bytes(label, &serde_json::to_vec(&gt).expect("serialisable"))
}
