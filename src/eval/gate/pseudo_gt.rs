//! Without annotations, the reference is the dense model itself: its confident detections become a ground truth.
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
    let mut imgs = Vec::new();
    for (id, p) in images {
        let (w, h) = crate::imaging::reader::image_size(p)?;
        imgs.push(serde_json::json!({"id": id, "file_name": p.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(), "width": w, "height": h}));
    }
    let anns = annotations(dense, min_score);
    if anns.is_empty() {
        return Err(Error::setting_at(
            label,
            "agreement_score",
            format!(
                "no detection scores at least `agreement_score` {min_score} on the {} images: there is no reference to agree with (lower it, or give `coco`)",
                images.len()
            ),
        ));
    }
    let gt = serde_json::json!({"images": imgs, "annotations": anns, "categories": categories(dense, num_classes)});
    CocoGt::from_bytes(label, &serde_json::to_vec(&gt).expect("serialisable"))
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
