//! ONNX Runtime training's step time on the emitted training core against PyTorch eager on the torchvision
//! model (tools/bench_train_torch.py), same weights, canvas and RoI count, measured in the same run.
use super::train_profile::{analyse_files, OrtProfile};
use super::{median, torch_baseline, Progress};
use crate::data::SeededRng;
use crate::detect::roi_align::{MultiScaleRoIAlign, RoiTaps};
use crate::error::{Error, Result, WriteContext};
use crate::graph::train_core::{training_graph, ElemType, TrainGraph, TrainOptions, TrainShape};
use crate::imaging::roi::SAMPLING_RATIO;
use crate::model::ModelState;
use crate::train::protocol::Tensor;
use crate::train::worker::{Device, Optimizer, Worker, WorkerOptions};
use ndarray::{ArrayD, IxDyn};
use prost::Message;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

pub struct Settings {
    pub model: PathBuf,
    /// Side of the square canvas.
    pub size: usize,
    /// Box-head RoIs per image.
    pub rois: usize,
    /// Mask / keypoint RoIs per image.
    pub head_rois: usize,
    pub repeat: usize,
    pub device: Device,
    /// The training venv's python (None: `runtime::env`'s).
    pub train_python: Option<PathBuf>,
    /// Python with torch ("none" skips the baseline; None: `runtime::env`'s).
    pub torch_python: Option<String>,
    /// Folder of the tools/ scripts (None: `runtime::env`'s).
    pub tools: Option<PathBuf>,
    /// Also take the step apart: ORT's profiler on the training session, torch's profiler on the baseline (both
    /// then run with their profiler on).
    pub profile: bool,
}

#[derive(Serialize)]
pub struct TrainBench {
    pub model: PathBuf,
    pub size: usize,
    pub rois: usize,
    pub ort_step_ms: f64,
    pub torch: Option<serde_json::Value>,
    /// ORT step time / torch eager step time.
    pub ort_over_torch: Option<f64>,
    /// With `profile`: the mean wall time of a step as the Rust side sees it (train step, optimizer step, gradient
    /// reset, each a round trip to the worker), and ORT's own account of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_wall_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ort_profile: Option<OrtProfile>,
}

impl TrainBench {
    /// torch's step time, when the baseline ran.
    pub fn torch_ms(&self) -> Option<f64> {
        self.torch.as_ref().and_then(|t| t["torch_step_ms"].as_f64())
    }
}

/// Uniform in `[0, 1)` as f32: input values that do not matter to the timing.
fn unit(g: &mut SeededRng) -> f32 {
    g.unit() as f32
}

/// Valid inputs of the training core: random images and targets, RoIAlign taps of random boxes.
fn inputs(state: &ModelState, graph: &TrainGraph, size: usize) -> Result<Vec<(String, Tensor)>> {
    let mut g = SeededRng::new(7);
    let classes = state.arch.num_classes.unwrap_or(2) as f32;
    let mut out = Vec::new();
    for spec in &graph.inputs {
        let n: usize = spec.shape.iter().product();
        let taps = |rows: usize, out_size: usize, g: &mut SeededRng| -> Result<RoiTaps> {
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

pub fn run(s: Settings, progress: &mut dyn FnMut(Progress)) -> Result<TrainBench> {
    let state = ModelState::import(&s.model)?;
    let shape = TrainShape {
        batch: 1,
        height: s.size,
        width: s.size,
        rois_per_image: s.rois,
        mask_rois_per_image: s.head_rois,
        keypoint_rois_per_image: s.head_rois,
    };
    let graph = training_graph(&state, &shape, &TrainOptions::default())?;
    let dir = tempfile::tempdir().map_err(|e| Error::Runtime(format!("temporary folder: {e}")))?;
    let core = dir.path().join("core.onnx");
    std::fs::write(&core, graph.model.encode_to_vec()).writing(&core)?;
    progress(Progress::Total(s.repeat as u64 + 2));
    let profile_prefix = dir.path().join("ort_");
    let options = WorkerOptions { profile: s.profile.then(|| profile_prefix.clone()), ..WorkerOptions::default() };
    let mut worker = Worker::start_with(&crate::runtime::env::train_python(s.train_python.as_deref())?, s.device, options)?;
    let trainable: Vec<&str> = graph.trainable.iter().map(String::as_str).collect();
    let frozen: Vec<&str> = graph.frozen.iter().map(String::as_str).collect();
    let artifacts = dir.path().join("artifacts");
    worker.generate_artifacts(&core, &trainable, &frozen, Optimizer::Sgd, &artifacts)?;
    worker.open(&artifacts, None)?;
    let feed = inputs(&state, &graph, s.size)?;
    let feed_refs: Vec<(&str, Tensor)> = feed.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    progress(Progress::Step);
    let mut times = Vec::new();
    for i in 0..=s.repeat {
        let t = Instant::now();
        worker.train_step(&feed_refs)?;
        worker.optimizer_step()?;
        worker.lazy_reset_grad()?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        progress(Progress::Step);
    }
    worker.shutdown()?;
    progress(Progress::Done);
    let ort_ms = median(&times);
    let ort_profile = if s.profile { Some(analyse_files(&profile_prefix, &graph.parts)?) } else { None };
    let step_wall_ms = s.profile.then(|| times.iter().sum::<f64>() / times.len().max(1) as f64);
    let torch = torch_baseline(
        s.torch_python.as_deref(),
        s.tools.as_deref(),
        "bench_train_torch.py",
        &[
            "--model".into(),
            s.model.clone().into_os_string(),
            "--size".into(),
            s.size.to_string().into(),
            "--rois".into(),
            s.rois.to_string().into(),
            "--repeat".into(),
            s.repeat.to_string().into(),
            if s.profile { "--profile" } else { "--no-profile" }.into(),
        ],
    )?;
    let mut r = TrainBench {
        model: s.model,
        size: s.size,
        rois: s.rois,
        ort_step_ms: ort_ms,
        torch,
        ort_over_torch: None,
        step_wall_ms,
        ort_profile,
    };
    r.ort_over_torch = r.torch_ms().map(|t| ort_ms / t);
    Ok(r)
}
