//! `ticket bench train`: ONNX Runtime training's step time on the emitted training core against PyTorch eager
//! on the torchvision model, same weights, canvas and RoI count, measured in the same run.
use super::emit;
use crate::data::SeededRng;
use crate::detect::roi_align::MultiScaleRoIAlign;
use crate::error::{Error, Result};
use crate::graph::train::{training_graph, ElemType, TrainOptions, TrainShape};
use crate::imaging::roi::SAMPLING_RATIO;
use crate::model::ModelState;
use crate::train::protocol::Tensor;
use crate::train::worker::{Device, Optimizer, Worker};
use ndarray::{ArrayD, IxDyn};
use prost::Message;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub model: PathBuf,
    /// Side of the square canvas (a multiple of 32).
    #[arg(long, default_value_t = 320)]
    pub size: usize,
    /// Box-head RoIs per image (torchvision samples up to 512).
    #[arg(long, default_value_t = 128)]
    pub rois: usize,
    /// Mask / keypoint RoIs per image (the positives among the box RoIs).
    #[arg(long, default_value_t = 32)]
    pub head_rois: usize,
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// cpu, or cuda (the training venv must then hold onnxruntime-training 1.19.2 with the CUDA 11.8 libraries:
    /// tools/requirements-train-cuda.txt).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// The training venv's python (default: $TICKET_TRAIN_PYTHON, else the one `ticket setup` made, else
    /// .venv-train/bin/python).
    #[arg(long)]
    pub train_python: Option<PathBuf>,
    /// Python with torch (default: $TICKET_TORCH_PYTHON, else the one `ticket setup --torch` made, else
    /// .venv-torch/bin/python); "none" skips the torch baseline.
    #[arg(long)]
    pub torch_python: Option<String>,
    /// Folder of the tools/ scripts (default: ./tools in a checkout, else the data folder's).
    #[arg(long)]
    pub tools: Option<PathBuf>,
}

#[derive(Serialize)]
struct TrainBench {
    model: PathBuf,
    size: usize,
    rois: usize,
    ort_step_ms: f64,
    torch: Option<serde_json::Value>,
    /// ORT step time / torch eager step time.
    ort_over_torch: Option<f64>,
}

/// Uniform in `[0, 1)` as f32: input values that do not matter to the timing.
fn unit(g: &mut SeededRng) -> f32 {
    g.unit() as f32
}

/// Valid inputs of the training core: random images and targets, RoIAlign taps of random boxes.
fn inputs(state: &ModelState, graph: &crate::graph::train::TrainGraph, size: usize) -> Result<Vec<(String, Tensor)>> {
    let mut g = SeededRng::new(7);
    let classes = state.arch.num_classes.unwrap_or(2) as f32;
    let mut out = Vec::new();
    for spec in &graph.inputs {
        let n: usize = spec.shape.iter().product();
        let taps = |rows: usize, out_size: usize, g: &mut SeededRng| -> Result<crate::detect::roi_align::RoiTaps> {
            let boxes: Vec<[f32; 4]> = (0..rows)
                .map(|_| {
                    let (x, y) = (unit(g) * size as f32 * 0.6, unit(g) * size as f32 * 0.6);
                    [x, y, x + 8.0 + unit(g) * size as f32 * 0.4, y + 8.0 + unit(g) * size as f32 * 0.4]
                })
                .collect();
            MultiScaleRoIAlign::new(&graph.feature_hw[..4], (size, size), out_size, SAMPLING_RATIO)?.taps(&boxes, 0, 1)
        };
        let t = match (spec.name.as_str(), spec.elem) {
            (name, ElemType::I64) if name.ends_with("_idx") => {
                let side = if name == "box_idx" { 7 } else { 14 };
                Tensor::I64(taps(spec.shape[0], side, &mut g)?.index.into_dyn())
            }
            (name, ElemType::F32) if name.ends_with("_w") && name != "rpn_bbox_w" => {
                let side = if name == "box_w" { 7 } else { 14 };
                Tensor::F32(taps(spec.shape[0], side, &mut g)?.weight.into_dyn())
            }
            ("kp_targets", ElemType::I64) => Tensor::I64(ArrayD::from_shape_fn(IxDyn(&spec.shape), |_| (unit(&mut g) * 3135.0) as i64)),
            (_, ElemType::I64) => Tensor::I64(ArrayD::from_shape_fn(IxDyn(&spec.shape), |_| 1 + (unit(&mut g) * (classes - 1.0)) as i64)),
            ("rpn_labels", _) => Tensor::F32(ArrayD::from_shape_fn(IxDyn(&spec.shape), |_| match unit(&mut g) {
                v if v < 0.02 => 1.0,
                v if v < 0.1 => 0.0,
                _ => -1.0,
            })),
            ("mask_targets", _) => Tensor::F32(ArrayD::from_shape_fn(IxDyn(&spec.shape), |_| (unit(&mut g) > 0.5) as u8 as f32)),
            _ => Tensor::F32(ArrayD::from_shape_vec(IxDyn(&spec.shape), (0..n).map(|_| unit(&mut g)).collect()).expect("shape")),
        };
        out.push((spec.name.clone(), t));
    }
    Ok(out)
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let state = ModelState::import(&args.model)?;
    let shape = TrainShape {
        batch: 1,
        height: args.size,
        width: args.size,
        rois_per_image: args.rois,
        mask_rois_per_image: args.head_rois,
        keypoint_rois_per_image: args.head_rois,
    };
    let graph = training_graph(&state, &shape, &TrainOptions::default())?;
    let dir = tempfile::tempdir().map_err(|e| Error::Runtime(format!("temporary folder: {e}")))?;
    let core = dir.path().join("core.onnx");
    std::fs::write(&core, graph.model.encode_to_vec()).map_err(|e| Error::io(&core, e))?;
    let bar = super::progress(args.repeat as u64 + 2, "bench", json);
    let mut worker = Worker::start(&crate::runtime::env::train_python(args.train_python.as_deref())?, args.device)?;
    let trainable: Vec<&str> = graph.trainable.iter().map(String::as_str).collect();
    let frozen: Vec<&str> = graph.frozen.iter().map(String::as_str).collect();
    let artifacts = dir.path().join("artifacts");
    worker.generate_artifacts(&core, &trainable, &frozen, Optimizer::Sgd, &artifacts)?;
    worker.open(&artifacts, None)?;
    let feed = inputs(&state, &graph, args.size)?;
    let feed_refs: Vec<(&str, Tensor)> = feed.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    bar.inc(1);
    let mut times = Vec::new();
    for i in 0..=args.repeat {
        let t = Instant::now();
        worker.train_step(&feed_refs)?;
        worker.optimizer_step()?;
        worker.lazy_reset_grad()?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        bar.inc(1);
    }
    worker.shutdown()?;
    bar.finish_and_clear();
    let ort_ms = super::median(&times);
    let torch = super::bench::torch_baseline(
        args.torch_python.as_deref(),
        args.tools.as_deref(),
        "bench_train_torch.py",
        &[
            "--model".into(),
            args.model.clone().into_os_string(),
            "--size".into(),
            args.size.to_string().into(),
            "--rois".into(),
            args.rois.to_string().into(),
            "--repeat".into(),
            args.repeat.to_string().into(),
        ],
    )?;
    let torch_ms = torch.as_ref().and_then(|t| t["torch_step_ms"].as_f64());
    let r = TrainBench {
        model: args.model,
        size: args.size,
        rois: args.rois,
        ort_step_ms: ort_ms,
        ort_over_torch: torch_ms.map(|t| ort_ms / t),
        torch,
    };
    emit(json, &r, |r| {
        let mut s = format!(
            "{}: one training step, {}² canvas, {} RoIs\nONNX Runtime training: {:.0} ms (median of {})\n",
            r.model.display(),
            r.size,
            r.rois,
            r.ort_step_ms,
            args.repeat
        );
        if let (Some(t), Some(x)) = (torch_ms, r.ort_over_torch) {
            s += &format!("PyTorch eager:         {t:.0} ms → ORT / torch = {x:.2}\n");
        }
        s
    });
    Ok(())
}
