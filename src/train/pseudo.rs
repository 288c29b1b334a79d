//! Labels for unlabeled images: the teacher's detections scoring at least `pseudo_score` become the run's ground
//! truth (boxes, and masks or keypoints where the teacher gives them), kept in the run folder as
//! `pseudo_gt.json`, so a resumed run trains on the labels it started with and a reader can see what it learnt
//! from.
use crate::data::Dataset;
use crate::detect::pseudo_gt::folder_pseudo_gt;
use crate::error::{Context, Error, Result};
use crate::model::ModelState;
use std::path::Path;

pub const PSEUDO_GT: &str = "pseudo_gt.json";

/// The labelled set of the images in `images`: read from RUN_DIR/pseudo_gt.json when the run there (`fresh`: none)
/// made it, else the teacher's detections. Returns the dataset and, when they are new, the bytes to keep in the run
/// folder.
pub fn labelled(run_dir: &Path, images: &Path, teacher: &ModelState, min_score: f64, fresh: bool) -> Result<(Dataset, Option<Vec<u8>>)> {
    let path = run_dir.join(PSEUDO_GT);
    if !fresh && path.is_file() {
        return Ok((Dataset::from_coco(&path, images)?, None));
    }
    let (gt, n, images_n) = folder_pseudo_gt(teacher, images, min_score)?;
    if n == 0 {
        return Err(Error::setting_at(
            images,
            "pseudo_score",
            format!(
                "the teacher {} detects nothing scoring at least `pseudo_score` {min_score} on these {} images: there is nothing to learn from",
                teacher.path().display(),
                images_n
            ),
        ));
    }
    let bytes = serde_json::to_vec(&gt).context(&path, "cannot serialise the pseudo ground truth")?;
    Ok((Dataset::from_coco_bytes(&path, &bytes, images)?, Some(bytes)))
}
