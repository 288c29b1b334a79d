//! `ticket detect`: a dense model or a ticket on CPU (tract stages + Rust post-processing), detections in the
//! COCO results format, optionally drawn for a person to look at.
use super::{print_report, progress_bar};
use crate::detect::pipeline::{DetectParams, Detector};
use crate::detect::report::DetectReport;
use crate::detect::results::CocoResult;
use crate::error::{Error, Result, WriteContext};
use crate::model::ModelState;
use std::path::{Path, PathBuf};

/// Settings shared by detect, eval --model and validate. Unset ones come from the model's graph where it
/// shows them (min/max size, box score threshold), else torchvision's defaults.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DetectOpts {
    /// Resize so the short side is this long (GeneralizedRCNNTransform's min_size).
    #[arg(long)]
    pub min_size: Option<usize>,
    /// ... unless the long side would exceed this (max_size).
    #[arg(long)]
    pub max_size: Option<usize>,
    /// Keep detections scoring above this (box_score_thresh).
    #[arg(long)]
    pub score_thresh: Option<f32>,
    /// IoU of the per-class NMS (box_nms_thresh, default 0.5).
    #[arg(long)]
    pub nms_thresh: Option<f64>,
    /// Detections kept per image (default 100).
    #[arg(long)]
    pub detections_per_img: Option<usize>,
    /// RPN proposals kept after NMS (default 1000).
    #[arg(long)]
    pub rpn_post_nms_top_n: Option<usize>,
    /// Threads for tract's matrix products (default: one per core; at most 4 × cores unless
    /// TICKET_MAX_THREADS says more).
    #[arg(long, value_parser = crate::runtime::threads::parse_threads)]
    pub threads: Option<usize>,
    /// Kernels per layer: auto (sparse where a layer is sparse enough to gain, docs/sparse.md), dense, sparse.
    #[arg(long, value_parser = ["auto", "dense", "sparse"])]
    pub kernels: Option<String>,
}

impl DetectOpts {
    /// tract's threads for the command (0: one per core), set process-wide by `cli::run`.
    pub fn tract_threads(&self) -> usize {
        self.threads.unwrap_or(0)
    }

    pub fn params(&self, state: &ModelState) -> Result<DetectParams> {
        let mut p = DetectParams::from_model(state);
        if let Some(v) = self.min_size {
            p.min_size = v;
        }
        if let Some(v) = self.max_size {
            p.max_size = v;
        }
        if let Some(v) = self.score_thresh {
            p.box_head.score_thresh = v;
        }
        if let Some(v) = self.nms_thresh {
            p.box_head.nms_thresh = v;
        }
        if let Some(v) = self.detections_per_img {
            p.box_head.detections_per_img = v;
        }
        if let Some(v) = self.rpn_post_nms_top_n {
            p.rpn.post_nms_top_n = v;
        }
        if self.threads == Some(0) {
            return Err(Error::Input("--threads 0: give at least 1 (leave it out for one per core)".into()));
        }
        if let Some(k) = &self.kernels {
            p.kernels =
                crate::sparse::Kernels::parse(k).ok_or_else(|| Error::Input(format!("--kernels {k}: give auto, dense or sparse")))?;
        }
        p.check()?;
        Ok(p)
    }
}

/// Runs the detector over images with a progress bar, drawing each one into `draw` when asked; prints the
/// detector's notes.
pub fn run_detector(det: &mut Detector, images: &[(u64, PathBuf)], json: bool, draw: Option<&Path>) -> Result<(Vec<CocoResult>, Vec<f64>)> {
    let mut on = progress_bar(images.len() as u64, "detect", json);
    let out = crate::detect::images::detect_images(det, images, &mut on, |path, img, dets| match draw {
        Some(dir) => crate::report::draw::write_drawn(dir, path, img, dets),
        None => Ok(()),
    });
    for note in det.notes.drain(..) {
        crate::fsio::stderr_line(format_args!("note: {note}"));
    }
    out
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A torchvision Faster/Mask/Keypoint R-CNN exported to ONNX (dense, pruned, or a compact ticket).
    pub model: PathBuf,
    /// Images to run on (any format the `image` crate decodes: PNG, JPEG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// A mask file to apply to the model first.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Detections, as a COCO results JSON list.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Also write each image with its detections drawn, as DIR/<image stem>.png.
    #[arg(long)]
    pub draw: Option<PathBuf>,
    #[command(flatten)]
    pub opts: DetectOpts,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let mut inputs: Vec<&Path> = vec![&args.model];
    inputs.extend(args.masks.as_deref());
    inputs.extend(args.images.iter().map(PathBuf::as_path));
    crate::fsio::ensure_distinct(&args.output, &inputs)?;
    let out_dir = args.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !out_dir.is_dir() {
        return Err(Error::input(&args.output, "the output folder does not exist"));
    }
    let state = ModelState::load(&args.model, args.masks.as_deref())?;
    let params = args.opts.params(&state)?;
    // Created once every setting has been checked: a refused run leaves nothing behind.
    if let Some(d) = &args.draw {
        std::fs::create_dir_all(d).writing(d)?;
    }
    let mut det = Detector::new(state, params.clone())?;
    let images: Vec<(u64, PathBuf)> = args.images.iter().enumerate().map(|(i, p)| (i as u64 + 1, p.clone())).collect();
    let (results, latency) = run_detector(&mut det, &images, json, args.draw.as_deref())?;
    let bytes = serde_json::to_vec(&results).map_err(|e| Error::Runtime(e.to_string()))?;
    crate::fsio::write_atomic(&args.output, &bytes)?;
    let report = DetectReport::new(args.model, args.output, &params, &images, &results, &latency);
    print_report(json, &report, render);
    Ok(())
}

fn render(r: &DetectReport) -> String {
    let mut s = String::new();
    for i in &r.images {
        s += &format!("{} (image_id {}): {} detections, {:.0} ms\n", i.file.display(), i.image_id, i.detections, i.latency_ms);
    }
    s + &format!("{} detections → {} (median {:.0} ms per image)\n", r.detections, r.output.display(), r.median_latency_ms)
}
