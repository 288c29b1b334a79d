//! A level's scores on the validation set (COCO, VOC or top-1, one detection run) and its row: sparsity of the
//! selected weights and of the network, FLOPs removed (channel levels), latency, sizes.
use super::{ImpConfig, Structure};
use crate::data::voc::VocDataset;
use crate::data::{ClassifyDataset, DataSpec};
use crate::detect::pipeline::DetectParams;
use crate::detect::pseudo_gt::folder_pseudo_gt;
use crate::error::{Context, Error, Result};
use crate::eval::model::{evaluate_model, iou_types_of};
use crate::eval::{CocoGt, EvalOptions, IouType};
use crate::fsio::write_atomic;
use crate::lottery::level::{LevelRow, Scores};
use crate::model::{Mask, Masks, ModelState, Role};
use crate::prune::channel;
use std::collections::BTreeMap;
use std::path::Path;

/// Where a run without validation annotations keeps its reference: the dense model's confident detections on
/// the validation images, made once at level 0 (a resumed run scores every level against the same one).
pub const VAL_REFERENCE: &str = "val_reference.json";

/// Makes RUN_DIR/val_reference.json from level 0's model when the validation set has no annotations and the run
/// has none yet.
pub(super) fn ensure_reference(dir: &Path, config: &ImpConfig) -> Result<()> {
    let path = dir.join(VAL_REFERENCE);
    if path.is_file() {
        return Ok(());
    }
    let dense = || ModelState::import(&crate::lottery::level::dir(dir, 0).join(crate::lottery::level::MODEL));
    match config.agreement_score {
        Some(_) => write_atomic(&path, &reference(config, &dense()?)?),
        None => Ok(()),
    }
}

/// The reference of a validation folder without annotations: `dense`'s detections on its images scoring at least
/// `agreement_score`, as COCO ground truth (JSON bytes). Refused when there are none.
pub(super) fn reference(config: &ImpConfig, dense: &ModelState) -> Result<Vec<u8>> {
    let (DataSpec::Unlabeled { dir: images, .. }, Some(min_score)) = (&config.val, config.agreement_score) else {
        return Err(Error::Input("a reference is made for a validation folder without annotations only".into()));
    };
    let (gt, n, images_n) = folder_pseudo_gt(dense, images, min_score)?;
    if n == 0 {
        return Err(Error::setting_at(
            images,
            "agreement_score",
            format!(
                "the dense model {} detects nothing scoring at least `agreement_score` {min_score} on these {} images: there is no reference to agree with (lower it, or give `val_coco`)",
                dense.path().display(),
                images_n
            ),
        ));
    }
    serde_json::to_vec(&gt).context(images, "cannot serialise the reference")
}

/// Scores, full reports (as JSON) and median latency of a model on the validation set of the run in `dir`, one
/// detection run.
pub(in crate::lottery) fn evaluate(
    config: &ImpConfig,
    dir: &Path,
    state: ModelState,
) -> Result<(BTreeMap<String, Scores>, serde_json::Value, f64)> {
    if let DataSpec::Classify { dir } = &config.val {
        let report =
            crate::eval::classify::top1(&state, &ClassifyDataset::load(dir)?, config.train.shape.height, &mut crate::progress::silent)?;
        let s = Scores { ap: Some(report.top1), ap50: None, ap75: None, ap_small: None, ap_medium: None, ap_large: None };
        return Ok((BTreeMap::from([("top1".to_string(), s)]), serde_json::to_value(&report).expect("serialises"), report.latency_ms));
    }
    let params = DetectParams::from_model(&state);
    match &config.val {
        DataSpec::Classify { .. } => unreachable!("scored above"),
        DataSpec::Unlabeled { dir: images, .. } => coco_scores(state, params, &dir.join(VAL_REFERENCE), images),
        DataSpec::Coco { annotations, images } => coco_scores(state, params, annotations, images),
        DataSpec::Voc { dir, images } => {
            let voc = VocDataset::load(dir)?;
            let images_dir = images.clone().unwrap_or_else(|| dir.join("JPEGImages"));
            let list = voc.image_paths(&images_dir)?;
            let mut det = crate::detect::pipeline::Detector::new(state, params)?;
            let (dets, latency) = crate::detect::images::detect_images(&mut det, &list, &mut crate::progress::silent, |_, _, _| Ok(()))?;
            let records = dets.iter().map(crate::detect::results::CocoResult::to_detection).collect();
            let report = voc.evaluate(crate::eval::DetSource::Records(records), &mut crate::progress::silent)?;
            let s = Scores { ap: None, ap50: report.map_area, ap75: None, ap_small: None, ap_medium: None, ap_large: None };
            Ok((
                BTreeMap::from([("voc".to_string(), s)]),
                serde_json::to_value(&report).expect("serialises"),
                crate::eval::model::median(&latency),
            ))
        }
    }
}

/// Scores on a COCO ground truth (annotations, or the run's reference) for every IoU type the model has.
fn coco_scores(
    state: ModelState,
    params: DetectParams,
    annotations: &Path,
    images: &Path,
) -> Result<(BTreeMap<String, Scores>, serde_json::Value, f64)> {
    let gt = CocoGt::load(annotations)?;
    let types = iou_types_of(&state);
    let ev = evaluate_model(state, params, &gt, images, &types, &EvalOptions::default(), &mut crate::progress::silent)?;
    let scores = types
        .iter()
        .zip(&ev.reports)
        .map(|(t, r)| {
            let size = |name: &str| r.metric(name);
            let name = match t {
                IouType::Bbox => "bbox",
                IouType::Segm => "segm",
                IouType::Keypoints => "keypoints",
            };
            (
                name.to_string(),
                Scores {
                    ap: size("AP"),
                    ap50: size("AP50"),
                    ap75: size("AP75"),
                    ap_small: size("APs"),
                    ap_medium: size("APm"),
                    ap_large: size("APl"),
                },
            )
        })
        .collect();
    Ok((scores, serde_json::to_value(&ev.reports).expect("serialises"), crate::eval::model::median(&ev.latency_ms)))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn level_row(
    config: &ImpConfig,
    state: &ModelState,
    masks: &Masks,
    r: usize,
    scores: BTreeMap<String, Scores>,
    steps: u64,
    train_s: f64,
    latency_ms: f64,
    compact_bytes: Option<u64>,
) -> Result<LevelRow> {
    // Selected = the weights the prune ranks (its modules); the network counts every parameter.
    let groups: Option<Vec<String>> =
        config.modules.as_ref().map(|m| m.iter().map(|g| crate::model::ModuleGroup::parse(g.trim()).key()).collect());
    let (mut sel_n, mut sel_kept) = (0usize, 0usize);
    let mut collapsed = Vec::new();
    for w in state.weights.tensors.iter().filter(|w| w.role == Role::Weight) {
        if groups.as_ref().is_some_and(|g| !g.contains(&w.group.key())) {
            continue;
        }
        let kept = masks.map.get(&w.name).map_or(w.numel(), Mask::kept);
        sel_n += w.numel();
        sel_kept += kept;
        if r > 0 && (kept as f64) < (1.0 - crate::prune::NEAR_COLLAPSE) * w.numel() as f64 {
            collapsed.push(w.name.clone());
        }
    }
    let network_pruned = masks.total() - masks.kept();
    let model_bytes = std::fs::metadata(state.path()).map(|m| m.len()).unwrap_or(0);
    let (mut selected_sparsity, mut network_sparsity) =
        (1.0 - sel_kept as f64 / sel_n.max(1) as f64, network_pruned as f64 / state.weights.total().max(1) as f64);
    let mut flops_removed = None;
    if config.structure == Structure::Channel {
        // Channels leave the graph: count against the dense model, weights and FLOPs alike.
        let dense = ModelState::import(&config.model)?;
        let prunable = |s: &ModelState| s.prunable().map(|w| w.numel()).sum::<usize>();
        selected_sparsity = 1.0 - prunable(state) as f64 / prunable(&dense).max(1) as f64;
        network_sparsity = 1.0 - state.weights.total() as f64 / dense.weights.total().max(1) as f64;
        let flops = |s: &ModelState| channel::costs(s, &Default::default()).values().map(|c| c.flops).sum::<u64>();
        flops_removed = Some(1.0 - flops(state) as f64 / flops(&dense).max(1) as f64);
    }
    Ok(LevelRow {
        level: r,
        selected_sparsity,
        network_sparsity,
        flops_removed,
        scores,
        steps,
        train_s,
        latency_ms,
        model_bytes,
        compact_bytes,
        collapsed,
    })
}
