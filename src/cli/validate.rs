//! `ticket validate`: the CI gate. A candidate ticket against its dense model: sparsity, mAP (on annotations,
//! or without them as agreement with the dense model's detections) and latency, with gates on sparsity and on
//! the mAP drop. Exit 0 when the gates hold, 1 when one fails, 2 on bad input.
use super::detect::{detect_images, DetectOpts};
use crate::detect::images::folder_images;
use crate::eval::model::{check_classes, coco_images};
use super::{emit, median, table};
use crate::detect::pipeline::Detector;
use crate::detect::results::CocoResult;
use crate::error::{Error, Result};
use crate::eval::{CocoGt, DetSource, EvalOptions, IouType};
use crate::model::ModelState;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The pruned model (ONNX or compact ticket).
    pub candidate: PathBuf,
    /// The dense model it came from.
    #[arg(long)]
    pub dense: PathBuf,
    /// COCO ground truth for the images; without it, the dense model's detections are the reference.
    #[arg(long)]
    pub coco: Option<PathBuf>,
    /// The images (with --coco, the folder holding the ground truth's file names).
    #[arg(long)]
    pub images: PathBuf,
    #[arg(long, value_enum, default_value_t = IouType::Bbox)]
    pub iou_type: IouType,
    /// Gate: the candidate's sparsity of prunable weights must be at least this.
    #[arg(long)]
    pub min_sparsity: Option<f64>,
    /// Gate: dense mAP minus candidate mAP (AP@[.50:.95], absolute) must be at most this.
    #[arg(long)]
    pub max_map_drop: Option<f64>,
    /// Without annotations: the dense model's detections scoring at least this become the reference.
    #[arg(long, default_value_t = 0.5)]
    pub agreement_score: f64,
    #[command(flatten)]
    pub opts: DetectOpts,
}

#[derive(Serialize)]
pub struct ModelRow {
    pub model: PathBuf,
    pub sparsity: f64,
    pub map: f64,
    pub ap50: f64,
    pub median_latency_ms: f64,
}

#[derive(Serialize)]
pub struct Gate {
    pub name: String,
    pub limit: f64,
    pub value: f64,
    pub passed: bool,
}

#[derive(Serialize)]
pub struct ValidateReport {
    /// "annotations" or "agreement with the dense model".
    pub reference: String,
    pub images: usize,
    pub dense: ModelRow,
    pub candidate: ModelRow,
    pub map_drop: f64,
    pub gates: Vec<Gate>,
    pub passed: bool,
}

fn sparsity(state: &ModelState) -> f64 {
    let (n, z) = state.prunable().fold((0usize, 0usize), |(n, z), w| (n + w.numel(), z + w.zeros()));
    z as f64 / n.max(1) as f64
}

fn run_model(state: ModelState, opts: &DetectOpts, images: &[(u64, PathBuf)], json: bool) -> Result<(Vec<CocoResult>, f64)> {
    let params = opts.params(&state)?;
    let mut det = Detector::new(state, params)?;
    let (results, latency) = detect_images(&mut det, images, json, None)?;
    Ok((results, median(&latency)))
}

/// Writes the dense model's confident detections as a COCO ground truth (into a temp folder).
fn pseudo_ground_truth(dir: &Path, images: &[(u64, PathBuf)], dense: &[CocoResult], min_score: f64, iou: IouType) -> Result<PathBuf> {
    let mut imgs = Vec::new();
    for (id, p) in images {
        let (w, h) = image::image_dimensions(p).map_err(|e| Error::input(p, format!("cannot read image size: {e}")))?;
        imgs.push(serde_json::json!({"id": id, "file_name": p.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(), "width": w, "height": h}));
    }
    let mut cats: Vec<u64> = dense.iter().map(|d| d.category_id).collect();
    cats.sort();
    cats.dedup();
    let anns: Vec<serde_json::Value> = dense
        .iter()
        .filter(|d| d.score >= min_score)
        .enumerate()
        .map(|(i, d)| {
            let mut a = serde_json::json!({"id": i + 1, "image_id": d.image_id, "category_id": d.category_id, "bbox": d.bbox,
                "area": d.bbox[2] * d.bbox[3], "iscrowd": 0});
            if let (IouType::Segm, Some(s)) = (iou, &d.segmentation) {
                a["segmentation"] = serde_json::to_value(s).expect("serialisable");
            }
            if let (IouType::Keypoints, Some(k)) = (iou, &d.keypoints) {
                a["keypoints"] = serde_json::to_value(k).expect("serialisable");
                a["num_keypoints"] = (k.len() / 3).into();
            }
            a
        })
        .collect();
    let kp_names: Vec<String> = dense.iter().find_map(|d| d.keypoints.as_ref()).map(|k| (0..k.len() / 3).map(|i| format!("k{i}")).collect()).unwrap_or_default();
    let categories: Vec<serde_json::Value> = cats
        .iter()
        .map(|c| {
            let mut v = serde_json::json!({"id": c, "name": format!("class {c}")});
            if !kp_names.is_empty() {
                v["keypoints"] = serde_json::to_value(&kp_names).expect("serialisable");
            }
            v
        })
        .collect();
    let gt = serde_json::json!({"images": imgs, "annotations": anns, "categories": categories});
    let path = dir.join("dense_reference.json");
    std::fs::write(&path, serde_json::to_vec(&gt).expect("serialisable")).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

fn evaluate(gt: &CocoGt, dets: &[CocoResult], iou: IouType) -> Result<(f64, f64)> {
    let records = dets.iter().map(CocoResult::to_detection).collect();
    let r = gt.evaluate(DetSource::Records(records), iou, &EvalOptions { tide: false, ..Default::default() }, &indicatif::ProgressBar::hidden())?;
    Ok((r.metric("AP").unwrap_or(0.0), r.metric("AP50").unwrap_or(0.0)))
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let dense = ModelState::load(&args.dense, None)?;
    let candidate = ModelState::load(&args.candidate, None)?;
    if dense.arch != candidate.arch {
        return Err(Error::input(&args.candidate, format!("is a {}, but the dense model is a {}", candidate.arch.summary(), dense.arch.summary())));
    }
    let (dense_sparsity, cand_sparsity) = (sparsity(&dense), sparsity(&candidate));
    let tmp = tempfile::tempdir().map_err(|e| Error::Runtime(format!("cannot make a temporary folder: {e}")))?;
    let (reference, gt, images) = match &args.coco {
        Some(path) => {
            let gt = CocoGt::load(path)?;
            check_classes(&dense, &gt)?;
            let images = coco_images(&gt, &args.images)?;
            ("annotations".to_string(), Some(gt), images)
        }
        None => {
            let images = folder_images(&args.images)?.into_iter().enumerate().map(|(i, p)| (i as u64 + 1, p)).collect();
            ("agreement with the dense model".to_string(), None, images)
        }
    };
    let (dense_dets, dense_ms) = run_model(dense, &args.opts, &images, json)?;
    let (cand_dets, cand_ms) = run_model(candidate, &args.opts, &images, json)?;
    let gt = match gt {
        Some(gt) => gt,
        None => CocoGt::load(&pseudo_ground_truth(tmp.path(), &images, &dense_dets, args.agreement_score, args.iou_type)?)?,
    };
    let (dense_map, dense_ap50) = evaluate(&gt, &dense_dets, args.iou_type)?;
    let (cand_map, cand_ap50) = evaluate(&gt, &cand_dets, args.iou_type)?;
    let map_drop = dense_map - cand_map;
    let mut gates = Vec::new();
    if let Some(s) = args.min_sparsity {
        gates.push(Gate { name: "min sparsity".into(), limit: s, value: cand_sparsity, passed: cand_sparsity >= s });
    }
    if let Some(d) = args.max_map_drop {
        gates.push(Gate { name: "max mAP drop".into(), limit: d, value: map_drop, passed: map_drop <= d });
    }
    let passed = gates.iter().all(|g| g.passed);
    let report = ValidateReport {
        reference,
        images: images.len(),
        dense: ModelRow { model: args.dense.clone(), sparsity: dense_sparsity, map: dense_map, ap50: dense_ap50, median_latency_ms: dense_ms },
        candidate: ModelRow { model: args.candidate.clone(), sparsity: cand_sparsity, map: cand_map, ap50: cand_ap50, median_latency_ms: cand_ms },
        map_drop,
        gates,
        passed,
    };
    emit(json, &report, text);
    if !passed {
        let failed: Vec<String> = report.gates.iter().filter(|g| !g.passed).map(|g| format!("{} {:.4} (limit {})", g.name, g.value, g.limit)).collect();
        return Err(Error::Reported(format!("{}: gate failed: {}", args.candidate.display(), failed.join(", "))));
    }
    Ok(())
}

fn text(r: &ValidateReport) -> String {
    let row = |m: &ModelRow, label: &str| {
        vec![label.to_string(), m.model.display().to_string(), super::pct(m.sparsity), format!("{:.4}", m.map), format!("{:.4}", m.ap50), format!("{:.0}", m.median_latency_ms)]
    };
    let mut s = format!("reference: {} ({} images)\n", r.reference, r.images);
    s += &table(&["", "Model", "Sparsity", "mAP", "AP50", "Latency ms"], &[row(&r.dense, "dense"), row(&r.candidate, "candidate")]);
    s += &format!("mAP drop {:.4}\n", r.map_drop);
    for g in &r.gates {
        s += &format!("{}: {:.4} (limit {}) {}\n", g.name, g.value, g.limit, if g.passed { "ok" } else { "FAILED" });
    }
    s + if r.passed { "passed\n" } else { "FAILED\n" }
}
