//! Labels for unlabeled images: the teacher's detections scoring at least `pseudo_score` become the run's ground
//! truth (boxes, and masks or keypoints where the teacher gives them), kept in the run folder as
//! `pseudo_gt.json`, so a resumed run trains on the labels it started with and a reader can see what it learnt
//! from.
use crate::data::joined::image_file;
use crate::data::Dataset;
use crate::detect::images::numbered_images;
use crate::detect::pseudo_gt::images_pseudo_gt;
use crate::error::{Context, Error, Result};
use crate::model::ModelState;
use std::path::Path;

pub const PSEUDO_GT: &str = "pseudo_gt.json";

/// The labelled set of the images in `images` that `own` (the run's labelled set, if any) does not hold: read from
/// RUN_DIR/pseudo_gt.json when the run there (`fresh`: none) made it, else the teacher's detections (an image with
/// labels of its own is not shown to the teacher: they win anyway). Returns the dataset and, when they are new, the
/// bytes to keep in the run folder.
pub fn labelled(
    run_dir: &Path,
    images: &Path,
    own: Option<&Dataset>,
    teacher: &ModelState,
    min_score: f64,
    fresh: bool,
) -> Result<(Dataset, Option<Vec<u8>>)> {
    let path = run_dir.join(PSEUDO_GT);
    if !fresh && path.is_file() {
        return Ok((Dataset::from_coco(&path, images)?, None));
    }
    let mut ids = numbered_images(images)?;
    if let Some(own) = own {
        let held = own.image_files();
        ids.retain(|(_, p)| !held.contains(&image_file(p)));
        if ids.is_empty() {
            return Err(Error::input(
                images,
                format!(
                    "holds no image without labels: every one is in {}, so there is nothing for the teacher to label",
                    own.source.display()
                ),
            ));
        }
    }
    let (gt, n, images_n) = images_pseudo_gt(teacher, &ids, min_score)?;
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
