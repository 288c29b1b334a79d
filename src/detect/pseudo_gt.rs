//! A model's confident detections as a COCO ground truth: what `validate` scores agreement against when there are
//! no annotations, and what training from unlabeled images learns from (`train::pseudo`).
use super::images::{detect_images, numbered_images};
use super::pipeline::{DetectParams, Detector};
use super::results::CocoResult;
use crate::error::Result;
use crate::model::ModelState;
use std::path::{Path, PathBuf};

/// The pseudo ground truth of a folder without annotations: `model`'s detections scoring at least `min_score` on
/// every image of it (ids 1.. in file-name order), with how many annotations and images it holds.
pub fn folder_pseudo_gt(model: &ModelState, dir: &Path, min_score: f64) -> Result<(serde_json::Value, usize, usize)> {
    images_pseudo_gt(model, &numbered_images(dir)?, min_score)
}

/// The pseudo ground truth of `(image id, file)` pairs, as `folder_pseudo_gt` makes it of a whole folder.
pub fn images_pseudo_gt(model: &ModelState, ids: &[(u64, PathBuf)], min_score: f64) -> Result<(serde_json::Value, usize, usize)> {
    let mut det = Detector::new(model.clone(), DetectParams::from_model(model))?;
    let (dets, _) = detect_images(&mut det, ids, &mut crate::progress::silent, |_, _, _| Ok(()))?;
    let (gt, n) = pseudo_gt_json(ids, &dets, min_score, model.arch.num_classes.unwrap_or(0))?;
    Ok((gt, n, ids.len()))
}

/// The COCO ground truth of `images` whose annotations are the detections scoring at least `min_score`, with
/// every geometry they have (boxes, and masks or keypoints where the model gives them). Its categories are every
/// class the model has, not only those found. Also returns how many annotations it holds.
pub fn pseudo_gt_json(
    images: &[(u64, PathBuf)],
    dets: &[CocoResult],
    min_score: f64,
    num_classes: usize,
) -> Result<(serde_json::Value, usize)> {
    let mut imgs = Vec::new();
    for (id, p) in images {
        let (w, h) = crate::imaging::reader::image_size(p)?;
        imgs.push(serde_json::json!({"id": id, "file_name": p.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(), "width": w, "height": h}));
    }
    let anns = annotations(dets, min_score);
    let n = anns.len();
    Ok((serde_json::json!({"images": imgs, "annotations": anns, "categories": categories(dets, num_classes)}), n))
}

/// The detections scoring at least `min_score`, as annotations with every geometry they have.
fn annotations(dense: &[CocoResult], min_score: f64) -> Vec<serde_json::Value> {
    dense
        .iter()
        .filter(|d| d.score >= min_score)
        .enumerate()
        .map(|(i, d)| {
            let mut a = serde_json::json!({"id": i + 1, "image_id": d.image_id, "category_id": d.category_id, "bbox": d.bbox,
                "area": d.bbox[2] * d.bbox[3], "iscrowd": 0});
            if let Some(s) = &d.segmentation {
                a["segmentation"] = serde_json::to_value(s).expect("serialisable");
            }
            if let Some(k) = &d.keypoints {
                a["keypoints"] = serde_json::to_value(k).expect("serialisable");
                a["num_keypoints"] = (k.len() / 3).into();
            }
            a
        })
        .collect()
}

/// Every class the model has (and any the detections name), with keypoint names when they have keypoints.
fn categories(dense: &[CocoResult], num_classes: usize) -> Vec<serde_json::Value> {
    let mut cats: Vec<u64> = dense.iter().map(|d| d.category_id).chain(1..num_classes.max(1) as u64).collect();
    cats.sort();
    cats.dedup();
    let kp_names: Vec<String> =
        dense.iter().find_map(|d| d.keypoints.as_ref()).map(|k| (0..k.len() / 3).map(|i| format!("k{i}")).collect()).unwrap_or_default();
    cats.iter()
        .map(|c| {
            let mut v = serde_json::json!({"id": c, "name": format!("class {c}")});
            if !kp_names.is_empty() {
                v["keypoints"] = serde_json::to_value(&kp_names).expect("serialisable");
            }
            v
        })
        .collect()
}
