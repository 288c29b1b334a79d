//! A model scored on COCO ground truth: its detections over the ground truth's images (one detection run),
//! evaluated for every IoU type asked — bbox, segm and keypoints from the same detections.
use super::{CocoGt, CocoReport, DetSource, EvalOptions, IouType};
use crate::detect::images::detect_images;
use crate::detect::pipeline::{DetectParams, Detector};
use crate::detect::results::CocoResult;
use crate::error::{Context, Error, Result};
use crate::model::{ModelKind, ModelState};
use crate::progress::{silent, Progress};
use std::path::{Path, PathBuf};

/// The ground truth's images under `dir` (by their `file_name`), with their ids. A `file_name` is a path from
/// a file: it must stay inside `dir` (no absolute path, no `..`), as `ticket data check` requires.
pub fn coco_images(gt: &CocoGt, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    if !dir.is_dir() {
        return Err(Error::input(dir, "not a folder of images"));
    }
    gt.images()
        .iter()
        .map(|im| {
            let path = crate::fsio::confined_join(dir, &im.file_name, &format!("image {} file_name", im.id)).at(gt.path())?;
            Ok((im.id, path))
        })
        .collect()
}

pub use crate::data::default_images;

/// A model's detections as records for scoring on `gt`: those of classes the ground truth has no category
/// for are left out, as pycocotools scores only the ground truth's categories (hotcoco refuses them instead).
pub fn scored_records(gt: &CocoGt, detections: &[CocoResult]) -> Vec<crate::detect::results::Detection> {
    let cats: std::collections::HashSet<u64> = gt.categories().iter().map(|c| c.id).collect();
    detections.iter().filter(|d| cats.contains(&d.category_id)).map(CocoResult::to_detection).collect()
}

/// A model's labels are category ids 1..K-1 (torchvision's convention); a dataset with other ids cannot be
/// scored by it.
pub fn check_classes(state: &ModelState, gt: &CocoGt) -> Result<()> {
    let k = state.arch.num_classes.unwrap_or(0) as u64;
    if let Some(c) = gt.categories().iter().find(|c| c.id == 0 || c.id >= k) {
        return Err(Error::input(
            gt.path(),
            format!(
                "category id {} ('{}') is outside the model's labels 1..{} ({})",
                c.id,
                c.name,
                k.saturating_sub(1),
                state.path().display()
            ),
        ));
    }
    Ok(())
}

/// VOC class ids are 1..=classes in the dataset's order (the set in `dir`); the model must have a label for each.
pub fn check_voc_classes(state: &ModelState, classes: usize, dir: &Path) -> Result<()> {
    let k = state.arch.num_classes.unwrap_or(0);
    if k != classes + 1 {
        return Err(Error::input(
            dir,
            format!("the dataset has {classes} classes but {} predicts {} (plus background)", state.path().display(), k.saturating_sub(1)),
        ));
    }
    Ok(())
}

/// The IoU types a model's outputs can be scored on: boxes always, masks and keypoints where it has the head.
pub fn iou_types_of(state: &ModelState) -> Vec<IouType> {
    match state.arch.kind {
        ModelKind::MaskRcnn => vec![IouType::Bbox, IouType::Segm],
        ModelKind::KeypointRcnn => vec![IouType::Bbox, IouType::Keypoints],
        _ => vec![IouType::Bbox],
    }
}

/// The asked IoU types, each one the model's outputs can be scored on, without repeats.
pub fn check_types(state: &ModelState, asked: &[IouType]) -> Result<Vec<IouType>> {
    let has = iou_types_of(state);
    let mut out = Vec::new();
    for t in asked {
        if !has.contains(t) {
            let names: Vec<&str> = has.iter().map(|t| t.as_str()).collect();
            return Err(Error::setting(
                "iou_type",
                format!(
                    "`iou_type` {}: {} has no such output (it can be scored on {})",
                    t.as_str(),
                    state.path().display(),
                    names.join(", ")
                ),
            ));
        }
        if !out.contains(t) {
            out.push(*t);
        }
    }
    Ok(out)
}

/// One detection run of a model over ground truth, and its reports.
pub struct ModelEval {
    pub detections: Vec<CocoResult>,
    pub latency_ms: Vec<f64>,
    pub reports: Vec<CocoReport>,
}

/// Runs `state` (tract) over the ground truth's images once and evaluates the detections for each IoU type.
pub fn evaluate_model(
    state: ModelState,
    params: DetectParams,
    gt: &CocoGt,
    images_dir: &Path,
    iou_types: &[IouType],
    opts: &EvalOptions,
    on: &mut dyn FnMut(Progress),
) -> Result<ModelEval> {
    check_classes(&state, gt)?;
    let images = coco_images(gt, images_dir)?;
    let mut det = Detector::new(state, params)?;
    let (detections, latency_ms) = detect_images(&mut det, &images, on, |_, _, _| Ok(()))?;
    let records = scored_records(gt, &detections);
    let reports = iou_types
        .iter()
        .map(|&iou| gt.evaluate(DetSource::Records(records.clone()), iou, opts, &mut silent))
        .collect::<Result<Vec<_>>>()?;
    Ok(ModelEval { detections, latency_ms, reports })
}

/// Latencies are summarised as detection summarises them.
pub use crate::detect::report::median;
