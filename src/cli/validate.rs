//! `ticket validate`: the CI gate. A candidate ticket against its dense model: sparsity, mAP (on annotations,
//! or without them as agreement with the dense model's detections) and latency, with gates on sparsity and on
//! the mAP drop of every IoU type the model has. Exit 0 when the gates hold, 1 when one fails, 2 on bad input.
//!
//! The dense model's detections do not change between calls, so they need not be recomputed: `--dense-dets`
//! reads them from a results file (`ticket detect DENSE … -o FILE`), and `--dense-cache FILE` keeps them with
//! their latencies, keyed by what determines them — the dense model's and every image's fingerprint and the
//! detection settings. A stale cache (any of those changed) is recomputed and rewritten, never trusted.
use super::detect::{run_detector as detect_images, DetectOpts};
use super::{emit, table};
use crate::detect::images::folder_images;
use crate::detect::pipeline::Detector;
use crate::detect::results::CocoResult;
use crate::error::{Error, Result};
use crate::eval::model::{check_classes, coco_images, default_images, iou_types_of, median};
use crate::eval::{CocoGt, DetSource, EvalOptions, IouType};
use crate::model::ModelState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// The images (with --coco, the folder holding the ground truth's file names; default `images/` next to the
    /// json, as `ticket train` and `ticket eval` read it).
    #[arg(long, required_unless_present = "coco")]
    pub images: Option<PathBuf>,
    /// IoU types to score and gate, comma-separated (bbox,segm,keypoints); default: every type the model has.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub iou_type: Option<Vec<IouType>>,
    /// Gate: the candidate's sparsity of prunable weights must be at least this.
    #[arg(long)]
    pub min_sparsity: Option<f64>,
    /// Gate, per IoU type: dense mAP minus candidate mAP (AP@[.50:.95], absolute) must be at most this.
    #[arg(long)]
    pub max_map_drop: Option<f64>,
    /// Without annotations: the dense model's detections scoring at least this become the reference.
    #[arg(long, default_value_t = 0.5)]
    pub agreement_score: f64,
    /// The dense model's detections from a COCO results file (e.g. `ticket detect DENSE IMAGES… -o FILE`, image
    /// ids as validate numbers them: the ground truth's, or 1..N in file-name order) instead of running it.
    #[arg(long, conflicts_with = "dense_cache")]
    pub dense_dets: Option<PathBuf>,
    /// Keep the dense model's detections and latencies in FILE and reuse them while the dense model, the images
    /// and the detection settings are unchanged (recomputed and rewritten otherwise).
    #[arg(long)]
    pub dense_cache: Option<PathBuf>,
    /// Time each image this many times (the detections come from the first run); latency is reported as the
    /// median with its spread over all runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    #[command(flatten)]
    pub opts: DetectOpts,
}

/// Per-image latency over all timed runs.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Latency {
    pub samples: usize,
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(samples: &[f64]) -> Latency {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        // Nearest rank: the sample below which q of the samples lie.
        let q = |q: f64| s.get(((q * s.len() as f64).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0);
        Latency {
            samples: s.len(),
            median_ms: median(&s),
            p10_ms: q(0.1),
            p90_ms: q(0.9),
            min_ms: s.first().copied().unwrap_or(0.0),
            max_ms: s.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Serialize)]
pub struct Scores {
    pub ap: f64,
    pub ap50: f64,
}

#[derive(Serialize)]
pub struct ModelRow {
    pub model: PathBuf,
    pub sparsity: f64,
    /// IoU type → AP@[.50:.95] and AP50.
    pub scores: BTreeMap<String, Scores>,
    /// `None` when the dense detections were read from --dense-dets (nothing was timed).
    pub latency: Option<Latency>,
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
    /// Where the dense detections came from: "run", "file FILE" (--dense-dets), or "cache FILE (reused)",
    /// "(written)" or "(stale: recomputed)".
    pub dense_detections: String,
    pub dense: ModelRow,
    pub candidate: ModelRow,
    /// IoU type → dense mAP minus candidate mAP.
    pub map_drop: BTreeMap<String, f64>,
    pub gates: Vec<Gate>,
    pub passed: bool,
}

/// What `--dense-cache` holds; `key` says what the detections were computed from.
#[derive(Serialize, Deserialize)]
struct DenseCache {
    key: CacheKey,
    detections: Vec<CocoResult>,
    latency_ms: Vec<f64>,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct CacheKey {
    dense_fingerprint: String,
    /// (image id, file, fingerprint of its bytes).
    images: Vec<(u64, PathBuf, String)>,
    /// The detection settings in effect (DetectParams, debug form).
    settings: String,
}

fn sparsity(state: &ModelState) -> f64 {
    let (n, z) = state.prunable().fold((0usize, 0usize), |(n, z), w| (n + w.numel(), z + w.zeros()));
    z as f64 / n.max(1) as f64
}

/// Detections of the first run and the latencies of all `repeat` runs.
fn run_model(
    state: ModelState,
    opts: &DetectOpts,
    images: &[(u64, PathBuf)],
    repeat: u32,
    json: bool,
) -> Result<(Vec<CocoResult>, Vec<f64>)> {
    let params = opts.params(&state)?;
    let mut det = Detector::new(state, params)?;
    let (results, mut latency) = detect_images(&mut det, images, json, None)?;
    for _ in 1..repeat {
        latency.extend(detect_images(&mut det, images, json, None)?.1);
    }
    Ok((results, latency))
}

/// The dense model's detections (and latencies, when timed here): read, reused from the cache, or run.
fn dense_detections(
    args: &Args,
    dense: ModelState,
    images: &[(u64, PathBuf)],
    json: bool,
) -> Result<(Vec<CocoResult>, Option<Vec<f64>>, String)> {
    if let Some(file) = &args.dense_dets {
        let bytes = crate::fsio::read_limited(file, 4 << 30)?;
        let dets: Vec<CocoResult> =
            serde_json::from_slice(&bytes).map_err(|e| Error::input(file, format!("not a COCO results list: {e}")))?;
        check_dense_file(file, &dets, images, dense.arch.num_classes.unwrap_or(0), None)?;
        return Ok((dets, None, format!("file {}", file.display())));
    }
    let Some(cache) = &args.dense_cache else {
        let (dets, ms) = run_model(dense, &args.opts, images, args.repeat, json)?;
        return Ok((dets, Some(ms), "run".into()));
    };
    crate::fsio::ensure_distinct(cache, &[&args.dense, &args.candidate])?;
    let key = CacheKey {
        dense_fingerprint: crate::train::run::fingerprint(&args.dense)?,
        images: images.iter().map(|(id, p)| Ok((*id, p.clone(), crate::train::run::fingerprint(p)?))).collect::<Result<_>>()?,
        settings: format!("{:?}", args.opts.params(&dense)?),
    };
    let mut source = format!("cache {} (written)", cache.display());
    if cache.exists() {
        let bytes = crate::fsio::read_limited(cache, 4 << 30)?;
        let c: DenseCache = serde_json::from_slice(&bytes).map_err(|e| Error::input(cache, format!("not a validate dense cache: {e}")))?;
        if c.key == key {
            check_dense_file(cache, &c.detections, images, dense.arch.num_classes.unwrap_or(0), Some(&c.latency_ms))?;
            return Ok((c.detections, Some(c.latency_ms), format!("cache {} (reused)", cache.display())));
        }
        source = format!("cache {} (stale: recomputed)", cache.display());
    }
    let (detections, latency_ms) = run_model(dense, &args.opts, images, args.repeat, json)?;
    let c = DenseCache { key, detections, latency_ms };
    crate::fsio::write_atomic(cache, &serde_json::to_vec(&c).expect("serialisable"))?;
    Ok((c.detections, Some(c.latency_ms), source))
}

/// The dense model's confident detections as a COCO ground truth, built in memory (`label` names it in
/// errors: a path the user gave, never a temporary file). Its categories are every class the model has, not
/// only those the dense model found: the candidate's detections of another class are then unmatched detections
/// of a category without reference objects, as COCO scores them, instead of an error. Every geometry the dense
/// model gave is kept, so one reference serves each IoU type.
fn pseudo_ground_truth(
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
    let mut cats: Vec<u64> = dense.iter().map(|d| d.category_id).chain(1..num_classes.max(1) as u64).collect();
    cats.sort();
    cats.dedup();
    let anns: Vec<serde_json::Value> = dense
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
        .collect();
    if anns.is_empty() {
        return Err(Error::input(
            label,
            format!("no detection scores at least --agreement-score {min_score} on the {} images: there is no reference to agree with (lower it, or give --coco)", images.len()),
        ));
    }
    let kp_names: Vec<String> =
        dense.iter().find_map(|d| d.keypoints.as_ref()).map(|k| (0..k.len() / 3).map(|i| format!("k{i}")).collect()).unwrap_or_default();
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
    CocoGt::from_bytes(label, &serde_json::to_vec(&gt).expect("serialisable"))
}

fn evaluate(gt: &CocoGt, dets: &[CocoResult], iou: IouType) -> Result<Scores> {
    let records = crate::eval::model::scored_records(gt, dets);
    let r = gt.evaluate(
        DetSource::Records(records),
        iou,
        &EvalOptions { tide: false, ..Default::default() },
        &indicatif::ProgressBar::hidden(),
    )?;
    // No AP: nothing in the reference to find. A gate on it would pass whatever the candidate does.
    let ap = r.metric("AP").ok_or_else(|| {
        Error::input(gt.path(), format!("has no reference objects to score {} on: the gate would pass any model", iou.as_str()))
    })?;
    Ok(Scores { ap, ap50: r.metric("AP50").unwrap_or(0.0) })
}

/// The file the dense detections come from, when they are read from one.
fn dense_source_file(args: &Args) -> Option<&Path> {
    args.dense_dets.as_deref().or(args.dense_cache.as_deref().filter(|c| c.exists()))
}

/// The gate settings, checked before any model is run or file written: fractions must be finite and in [0, 1]
/// (NaN compares false both ways, so a NaN limit would pass or fail every gate silently).
fn check_settings(args: &Args) -> Result<()> {
    let fraction = |flag: &str, v: f64| {
        if v.is_finite() && (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(Error::Input(format!("{flag} {v}: give a number in [0, 1]")))
        }
    };
    fraction("--agreement-score", args.agreement_score)?;
    if let Some(v) = args.min_sparsity {
        fraction("--min-sparsity", v)?;
    }
    if let Some(v) = args.max_map_drop {
        fraction("--max-map-drop", v)?;
    }
    if let Some(cache) = &args.dense_cache {
        let dir = cache.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(Error::input(cache, "the folder of the dense cache does not exist"));
        }
        if cache.exists() && !cache.is_file() {
            return Err(Error::input(cache, "the dense cache is not a regular file"));
        }
    }
    Ok(())
}

/// Dense detections read from `file` (--dense-dets or the cache) must be of the validated images and the
/// model's classes, with finite scores and boxes; `latency_ms`, from the cache, must be finite timings.
fn check_dense_file(
    file: &Path,
    dets: &[CocoResult],
    images: &[(u64, PathBuf)],
    num_classes: usize,
    latency_ms: Option<&[f64]>,
) -> Result<()> {
    for (i, d) in dets.iter().enumerate() {
        if !images.iter().any(|(id, _)| *id == d.image_id) {
            return Err(Error::input(
                file,
                format!(
                    "image_id {} is none of the {} images validated (ids 1..N in file-name order, or the ground truth's)",
                    d.image_id,
                    images.len()
                ),
            ));
        }
        if d.category_id == 0 || d.category_id >= num_classes as u64 {
            return Err(Error::input(
                file,
                format!(
                    "detection {i}: category_id {} is not one of the model's labels 1..{}",
                    d.category_id,
                    num_classes.saturating_sub(1)
                ),
            ));
        }
        if !d.score.is_finite() || !d.bbox.iter().all(|v| v.is_finite()) {
            return Err(Error::input(file, format!("detection {i}: score or bbox is not finite")));
        }
    }
    if let Some(ms) = latency_ms {
        if ms.len() < images.len() || !ms.iter().all(|v| v.is_finite() && *v >= 0.0) {
            return Err(Error::input(
                file,
                format!("holds {} latencies for {} images, or one that is not a finite time", ms.len(), images.len()),
            ));
        }
    }
    Ok(())
}

pub fn run(args: Args, json: bool) -> Result<()> {
    check_settings(&args)?;
    let dense = ModelState::load(&args.dense, None)?;
    let dense_classes = dense.arch.num_classes.unwrap_or(0);
    let candidate = ModelState::load(&args.candidate, None)?;
    if dense.arch != candidate.arch {
        return Err(Error::input(
            &args.candidate,
            format!("is a {}, but the dense model is a {}", candidate.arch.summary(), dense.arch.summary()),
        ));
    }
    let types = match &args.iou_type {
        Some(t) => crate::eval::model::check_iou_types(&dense, t)?,
        None => iou_types_of(&dense),
    };
    let (dense_sparsity, cand_sparsity) = (sparsity(&dense), sparsity(&candidate));
    let (reference, gt, images) = match &args.coco {
        Some(path) => {
            let gt = CocoGt::load(path)?;
            check_classes(&dense, &gt)?;
            let dir = args.images.clone().unwrap_or_else(|| default_images(path));
            let images = coco_images(&gt, &dir)?;
            ("annotations".to_string(), Some(gt), images)
        }
        None => {
            let images = folder_images(args.images.as_deref().expect("clap: --images without --coco"))?
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i as u64 + 1, p))
                .collect();
            ("agreement with the dense model".to_string(), None, images)
        }
    };
    let (dense_dets, dense_ms, dense_source) = dense_detections(&args, dense, &images, json)?;
    let (cand_dets, cand_ms) = run_model(candidate, &args.opts, &images, args.repeat, json)?;
    let gt = match gt {
        Some(gt) => gt,
        None => {
            let label = dense_source_file(&args).unwrap_or(&args.dense);
            pseudo_ground_truth(label, &images, &dense_dets, args.agreement_score, dense_classes)?
        }
    };
    let score = |dets: &[CocoResult]| -> Result<BTreeMap<String, Scores>> {
        types.iter().map(|&t| Ok((t.as_str().to_string(), evaluate(&gt, dets, t)?))).collect()
    };
    let (dense_scores, cand_scores) = (score(&dense_dets)?, score(&cand_dets)?);
    let map_drop: BTreeMap<String, f64> = dense_scores.iter().map(|(t, d)| (t.clone(), d.ap - cand_scores[t].ap)).collect();
    let mut gates = Vec::new();
    if let Some(s) = args.min_sparsity {
        gates.push(Gate { name: "min sparsity".into(), limit: s, value: cand_sparsity, passed: cand_sparsity >= s });
    }
    if let Some(d) = args.max_map_drop {
        for (t, drop) in &map_drop {
            gates.push(Gate { name: format!("max mAP drop ({t})"), limit: d, value: *drop, passed: *drop <= d });
        }
    }
    let passed = gates.iter().all(|g| g.passed);
    let report = ValidateReport {
        reference,
        images: images.len(),
        dense_detections: dense_source,
        dense: ModelRow {
            model: args.dense.clone(),
            sparsity: dense_sparsity,
            scores: dense_scores,
            latency: dense_ms.as_deref().map(Latency::of),
        },
        candidate: ModelRow {
            model: args.candidate.clone(),
            sparsity: cand_sparsity,
            scores: cand_scores,
            latency: Some(Latency::of(&cand_ms)),
        },
        map_drop,
        gates,
        passed,
    };
    emit(json, &report, text);
    if !passed {
        // The one place the verdict is spelled out: the text above marks each gate, this line (stderr) says FAILED.
        let failed: Vec<String> =
            report.gates.iter().filter(|g| !g.passed).map(|g| format!("{} {:.4} (limit {})", g.name, g.value, g.limit)).collect();
        return Err(Error::Reported(format!("{}: FAILED: {}", args.candidate.display(), failed.join(", "))));
    }
    Ok(())
}

fn text(r: &ValidateReport) -> String {
    let types: Vec<&String> = r.dense.scores.keys().collect();
    let mut header = vec!["".to_string(), "Model".into(), "Sparsity".into()];
    for t in &types {
        header.extend([format!("mAP {t}"), format!("AP50 {t}")]);
    }
    header.extend(["Latency ms median".into(), "p10–p90".into(), "min–max".into()]);
    let row = |m: &ModelRow, label: &str| {
        let mut row = vec![label.to_string(), m.model.display().to_string(), super::pct(m.sparsity)];
        for s in m.scores.values() {
            row.extend([format!("{:.4}", s.ap), format!("{:.4}", s.ap50)]);
        }
        match &m.latency {
            Some(l) => row.extend([
                format!("{:.1}", l.median_ms),
                format!("{:.1}–{:.1}", l.p10_ms, l.p90_ms),
                format!("{:.1}–{:.1}", l.min_ms, l.max_ms),
            ]),
            None => row.extend(["-".into(), "-".into(), "-".into()]),
        }
        row
    };
    let mut s = format!("reference: {} ({} images); dense detections: {}\n", r.reference, r.images, r.dense_detections);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    s += &table(&header, &[row(&r.dense, "dense"), row(&r.candidate, "candidate")]);
    if let Some(l) = &r.candidate.latency {
        s += &format!("latency over {} timed images\n", l.samples);
    }
    let drops: Vec<String> = r.map_drop.iter().map(|(t, d)| format!("{t} {d:.4}")).collect();
    s += &format!("mAP drop: {}\n", drops.join(", "));
    // Failed gates are marked "over the limit" here; the verdict FAILED is the error line, printed once.
    for g in &r.gates {
        s += &format!("{}: {:.4} (limit {}) {}\n", g.name, g.value, g.limit, if g.passed { "ok" } else { "over the limit" });
    }
    s + if r.passed { "passed\n" } else { "" }
}
