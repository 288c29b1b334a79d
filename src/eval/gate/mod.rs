//! The validate gate (`ticket validate`, and the demo's check of its ticket): a candidate ticket against its
//! dense model — sparsity, mAP (on annotations, or without them as agreement with the dense model's
//! detections) and latency, with gates on sparsity and on the mAP drop of every IoU type the model has.
//!
//! The dense model's detections can come from a results file or a cache (kept while the dense model, the
//! images and the detection settings are unchanged) instead of a run. How a model is run — its detection settings, and what is shown while it runs — is the caller's
//! ([`DetectRun`]).
mod cache;
mod gates;
mod latency;
mod pseudo_gt;
mod report;
mod settings;

pub use gates::{sparsity, Gate};
pub use latency::Latency;
pub use report::{ModelRow, Scores, ValidateReport};
pub use settings::{GateSettings, DEFAULT_AGREEMENT_SCORE};

use crate::detect::images::numbered_images;
use crate::detect::pipeline::{DetectParams, Detector};
use crate::detect::results::CocoResult;
use crate::error::{Error, Result};
use crate::eval::model::{check_classes, check_types, coco_images, default_images, iou_types_of};
use crate::eval::CocoGt;
use crate::model::ModelState;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Detections and per-image latencies (ms) of one run over the images.
pub type DetectOutput = (Vec<CocoResult>, Vec<f64>);
/// The detection settings a model gets.
pub type ParamsFn<'a> = Box<dyn Fn(&ModelState) -> Result<DetectParams> + 'a>;
/// One run of the detector over (image id, path) pairs.
pub type RunFn<'a> = Box<dyn FnMut(&mut Detector, &[(u64, PathBuf)]) -> Result<DetectOutput> + 'a>;

/// How the gate runs a model: the detection settings a model gets, and one run of the detector over the images
/// (where the caller shows progress and the detector's notes, or not).
pub struct DetectRun<'a> {
    pub params: ParamsFn<'a>,
    pub run: RunFn<'a>,
}

impl Default for DetectRun<'_> {
    /// The settings the model's graph shows (torchvision's defaults elsewhere), run without a word.
    fn default() -> Self {
        DetectRun {
            params: Box::new(|s| Ok(DetectParams::from_model(s))),
            run: Box::new(|det, images| crate::detect::images::detect_images(det, images, &mut crate::progress::silent, |_, _, _| Ok(()))),
        }
    }
}

/// Runs both models over the images, scores them on the reference and applies the gates. A failed gate is a
/// report with `passed: false`, not an error; errors are bad input or a broken environment.
pub fn validate(s: &GateSettings, detect: &mut DetectRun) -> Result<ValidateReport> {
    s.check()?;
    let dense = ModelState::load(&s.dense, None)?;
    let dense_classes = dense.arch.num_classes.unwrap_or(0);
    let candidate = ModelState::load(&s.candidate, None)?;
    if dense.arch != candidate.arch {
        return Err(Error::input(
            &s.candidate,
            format!("is a {}, but the dense model is a {}", candidate.arch.summary(), dense.arch.summary()),
        ));
    }
    let types = match &s.iou_types {
        Some(t) => check_types(&dense, t)?,
        None => iou_types_of(&dense),
    };
    let (dense_sparsity, cand_sparsity) = (sparsity(&dense), sparsity(&candidate));
    let (reference, gt, images) = reference(s, &dense)?;
    let dense_run = cache::dense_detections(s, dense, &images, detect)?;
    let (cand_dets, cand_ms) = cache::run_model(candidate, &images, s.repeat, detect)?;
    let gt = match gt {
        Some(gt) => gt,
        None => {
            let label = s.dense_source_file().unwrap_or(&s.dense);
            pseudo_gt::pseudo_ground_truth(label, &images, &dense_run.detections, s.agreement_score, dense_classes)?
        }
    };
    let score = |dets: &[CocoResult]| -> Result<BTreeMap<String, Scores>> {
        types.iter().map(|&t| Ok((t.as_str().to_string(), gates::score(&gt, dets, t)?))).collect()
    };
    let (dense_scores, cand_scores) = (score(&dense_run.detections)?, score(&cand_dets)?);
    let map_drop: BTreeMap<String, f64> = dense_scores.iter().map(|(t, d)| (t.clone(), d.ap - cand_scores[t].ap)).collect();
    let gates = gates::gates(s.min_sparsity, s.max_map_drop, cand_sparsity, &map_drop);
    let passed = gates.iter().all(|g| g.passed);
    Ok(ValidateReport {
        reference,
        images: images.len(),
        dense_detections: dense_run.source,
        dense: ModelRow {
            model: s.dense.clone(),
            sparsity: dense_sparsity,
            scores: dense_scores,
            latency: dense_run.latency_ms.as_deref().map(Latency::of),
        },
        candidate: ModelRow {
            model: s.candidate.clone(),
            sparsity: cand_sparsity,
            scores: cand_scores,
            latency: Some(Latency::of(&cand_ms)),
        },
        map_drop,
        gates,
        passed,
    })
}

/// What the models are scored against ("annotations" or agreement with the dense model), the ground truth when
/// there are annotations, and the images with their ids (the ground truth's, or 1..N in file-name order).
fn reference(s: &GateSettings, dense: &ModelState) -> Result<(String, Option<CocoGt>, Vec<(u64, PathBuf)>)> {
    match &s.coco {
        Some(path) => {
            let gt = CocoGt::load(path)?;
            check_classes(dense, &gt)?;
            let dir = s.images.clone().unwrap_or_else(|| default_images(path));
            let images = coco_images(&gt, &dir)?;
            Ok(("annotations".to_string(), Some(gt), images))
        }
        None => {
            let dir = s.images.as_deref().ok_or_else(|| Error::setting("images", "without `coco`, give `images` DIR"))?;
            let images = numbered_images(dir)?;
            Ok(("agreement with the dense model".to_string(), None, images))
        }
    }
}
