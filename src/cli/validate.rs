//! `ticket validate`: the CI gate (`eval::gate`). A candidate ticket against its dense model: sparsity, mAP (on
//! annotations, or without them as agreement with the dense model's detections) and latency, with gates on
//! sparsity and on the mAP drop of every IoU type the model has. Exit 0 when the gates hold, 1 when one fails,
//! 2 on bad input.
//!
//! The dense model's detections do not change between calls, so they need not be recomputed: `--dense-dets`
//! reads them from a results file (`ticket detect DENSE … -o FILE`), and `--dense-cache FILE` keeps them with
//! their latencies, keyed by what determines them — the dense model's and every image's fingerprint and the
//! detection settings. A stale cache (any of those changed) is recomputed and rewritten, never trusted.
use super::detect::{run_detector as detect_images, DetectOpts};
use super::{print_report, render_table};
use crate::error::{Error, Result};
use crate::eval::gate::{DetectRun, GateSettings, ModelRow, ValidateReport, DEFAULT_AGREEMENT_SCORE};
use crate::eval::IouType;
use std::path::PathBuf;

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
    #[arg(long, value_parser = super::choice::parse_choice::<IouType>(), value_delimiter = ',')]
    pub iou_type: Option<Vec<IouType>>,
    /// Gate: the candidate's sparsity of prunable weights must be at least this.
    #[arg(long)]
    pub min_sparsity: Option<f64>,
    /// Gate, per IoU type: dense mAP minus candidate mAP (AP@[.50:.95], absolute) must be at most this.
    #[arg(long)]
    pub max_map_drop: Option<f64>,
    /// Without annotations: the dense model's detections scoring at least this become the reference.
    #[arg(long, default_value_t = DEFAULT_AGREEMENT_SCORE)]
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

impl Args {
    /// The gate's settings from the flags.
    pub fn settings(&self) -> GateSettings {
        GateSettings {
            coco: self.coco.clone(),
            images: self.images.clone(),
            iou_types: self.iou_type.clone(),
            min_sparsity: self.min_sparsity,
            max_map_drop: self.max_map_drop,
            agreement_score: self.agreement_score,
            dense_dets: self.dense_dets.clone(),
            dense_cache: self.dense_cache.clone(),
            repeat: self.repeat,
            ..GateSettings::new(self.candidate.clone(), self.dense.clone())
        }
    }
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let mut detect =
        DetectRun { params: Box::new(|s| args.opts.params(s)), run: Box::new(|det, images| detect_images(det, images, json, None)) };
    let report = crate::eval::gate::validate(&args.settings(), &mut detect)?;
    print_report(json, &report, render);
    if !report.passed {
        // The one place the verdict is spelled out: the text above marks each gate, this line (stderr) says FAILED.
        return Err(Error::Reported(format!("{}: FAILED: {}", args.candidate.display(), report.failed().join(", "))));
    }
    Ok(())
}

fn render(r: &ValidateReport) -> String {
    let types: Vec<&String> = r.dense.scores.keys().collect();
    let mut header = vec!["".to_string(), "Model".into(), "Sparsity".into()];
    for t in &types {
        header.extend([format!("mAP {t}"), format!("AP50 {t}")]);
    }
    header.extend(["Latency ms median".into(), "p10–p90".into(), "min–max".into()]);
    let mut s = format!("reference: {} ({} images); dense detections: {}\n", r.reference, r.images, r.dense_detections);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    s += &render_table(&header, &[render_row(&r.dense, "dense"), render_row(&r.candidate, "candidate")]);
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

fn render_row(m: &ModelRow, label: &str) -> Vec<String> {
    let mut row = vec![label.to_string(), m.model.display().to_string(), super::render_pct(m.sparsity)];
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
}
