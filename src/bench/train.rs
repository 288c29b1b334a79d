//! ONNX Runtime training's step time on the emitted training core against PyTorch eager on the torchvision
//! model (tools/bench_train_torch.py), same weights, canvas and RoI count, measured in the same run.
use super::train_profile::{analyse_files, OrtProfile};
use super::{median, torch_baseline, Progress};
use crate::choice::Choice;
use crate::data::SeededRng;
use crate::detect::roi_align::MultiScaleRoIAlign;
use crate::error::{Error, Result, WriteContext};
use crate::graph::distill::{Distill, Term};
use crate::graph::train_core::{training_graph, ElemType, TrainGraph, TrainOptions, TrainShape};
use crate::graph::train_shape::Pooling;
use crate::imaging::roi::SAMPLING_RATIO;
use crate::model::ModelState;
use crate::train::config::DistillSettings;
use crate::train::protocol::Tensor;
use crate::train::step_inputs::pool_rows;
use crate::train::teacher::Teacher;
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
    /// Also time a distilling step (every term, the model as its own teacher) against the plain one.
    pub distill: bool,
    /// RoIAlign's form in the core (None: the one training uses at this canvas).
    pub pooling: Option<Pooling>,
    /// ORT intra-op threads (0: one per core).
    pub threads: usize,
}

/// A distilling step against the plain one, measured in the same run on the same inputs.
#[derive(Serialize)]
pub struct DistillBench {
    /// The teacher's forward on the step's batch and RoIs (the worker's ORT inference).
    pub teacher_ms: f64,
    /// The distilling core's training step (forward, backward, optimizer).
    pub step_ms: f64,
    /// (teacher + distilling step) / plain step, each a median.
    pub over_plain: f64,
    /// The teacher's share of the distilling step's whole time.
    pub teacher_share: f64,
}

#[derive(Serialize)]
pub struct TrainBench {
    pub model: PathBuf,
    pub size: usize,
    pub rois: usize,
    /// RoIAlign's form in the core that was timed.
    pub pooling: Pooling,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillBench>,
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

/// Valid inputs of the training core: random images and targets, RoIAlign inputs of random boxes.
fn inputs(state: &ModelState, graph: &TrainGraph, shape: &TrainShape) -> Result<Vec<(String, Tensor)>> {
    let size = shape.height;
    let mut g = SeededRng::new(7);
    let classes = state.arch.num_classes.unwrap_or(2) as f32;
    // Each pooling the core has, as the training loop feeds it (batch 1: image 0).
    let mut pools: Vec<(String, Tensor)> = Vec::new();
    for (prefix, rows, side) in
        [("box", shape.rois_per_image, 7), ("mask", shape.mask_rois_per_image, 14), ("kp", shape.keypoint_rois_per_image, 14)]
    {
        let names = shape.pool_inputs(prefix, rows, side);
        if !graph.inputs.iter().any(|spec| spec.name == names[0].0) {
            continue;
        }
        let boxes: Vec<[f32; 4]> = (0..rows)
            .map(|_| {
                let (x, y) = (unit(&mut g) * size as f32 * 0.6, unit(&mut g) * size as f32 * 0.6);
                [x, y, x + 8.0 + unit(&mut g) * size as f32 * 0.4, y + 8.0 + unit(&mut g) * size as f32 * 0.4]
            })
            .collect();
        let pooler = MultiScaleRoIAlign::new(&graph.feature_hw[..4], (size, size), side, SAMPLING_RATIO)?;
        pools.extend(pool_rows(&pooler, shape, prefix, &boxes, 0)?);
    }
    let mut out = Vec::new();
    for spec in &graph.inputs {
        let n: usize = spec.shape.iter().product();
        if let Some((_, t)) = pools.iter().find(|(name, _)| *name == spec.name) {
            out.push((spec.name.clone(), t.clone()));
            continue;
        }
        let t = match (spec.name.as_str(), spec.elem) {
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

/// Writes a training core into `dir/NAME.onnx`, generates its artifacts and opens them in the worker.
fn open_core(worker: &mut Worker, graph: &TrainGraph, dir: &std::path::Path, name: &str) -> Result<()> {
    let core = dir.join(format!("{name}.onnx"));
    std::fs::write(&core, graph.model.encode_to_vec()).writing(&core)?;
    let trainable: Vec<&str> = graph.trainable.iter().map(String::as_str).collect();
    let frozen: Vec<&str> = graph.frozen.iter().map(String::as_str).collect();
    let artifacts = dir.join(format!("{name}_artifacts"));
    worker.generate_artifacts(&core, &trainable, &frozen, Optimizer::Sgd, &artifacts)?;
    worker.open(&artifacts, None)?;
    Ok(())
}

/// `repeat` timed steps after one warm-up, each (teacher forward ms, training step ms). With a teacher, its forward
/// runs first on the step's images and RoIAlign taps and its outputs join the step's inputs; the step is the training
/// step, the optimizer step and the gradient reset.
fn time_steps(
    worker: &mut Worker,
    feed: &[(String, Tensor)],
    repeat: usize,
    teacher: Option<&Teacher>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<(f64, f64)>> {
    let mut times = Vec::new();
    for i in 0..=repeat {
        let t0 = Instant::now();
        let signals = match teacher {
            Some(t) => t.signals(worker, feed)?,
            None => Vec::new(),
        };
        let t1 = Instant::now();
        let refs: Vec<(&str, Tensor)> = feed.iter().chain(&signals).map(|(n, t)| (n.as_str(), t.clone())).collect();
        worker.train_step(&refs)?;
        worker.optimizer_step()?;
        worker.lazy_reset_grad()?;
        if i > 0 {
            times.push(((t1 - t0).as_secs_f64() * 1e3, t1.elapsed().as_secs_f64() * 1e3));
        }
        progress(Progress::Step);
    }
    Ok(times)
}

/// The distilling step (every term at the default weight and temperature; the model is its own teacher, which costs
/// what a dense teacher of the same width does) against the plain steps `plain` (ms), on the same inputs.
#[allow(clippy::too_many_arguments)]
fn time_distilling(
    worker: &mut Worker,
    state: &ModelState,
    shape: &TrainShape,
    feed: &[(String, Tensor)],
    plain: &[f64],
    dir: &std::path::Path,
    repeat: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<DistillBench> {
    let defaults = DistillSettings::default();
    let d = Distill {
        terms: Term::all().to_vec(),
        weight: defaults.weight,
        temperature: defaults.temperature,
        teacher_channels: state.arch.fpn_channels.unwrap_or(0),
    };
    let graph = training_graph(state, shape, &TrainOptions { distill: Some(d.clone()), ..TrainOptions::default() })?;
    let teacher = Teacher::prepare(state, shape, d, dir)?;
    open_core(worker, &graph, dir, "distill")?;
    progress(Progress::Step);
    let times = time_steps(worker, feed, repeat, Some(&teacher), progress)?;
    let teacher_ms = median(&times.iter().map(|t| t.0).collect::<Vec<_>>());
    let step_ms = median(&times.iter().map(|t| t.1).collect::<Vec<_>>());
    let whole = teacher_ms + step_ms;
    Ok(DistillBench { teacher_ms, step_ms, over_plain: whole / median(plain), teacher_share: teacher_ms / whole })
}

pub fn run(s: Settings, progress: &mut dyn FnMut(Progress)) -> Result<TrainBench> {
    if s.profile && s.distill {
        // The profiler writes one file per session; two sessions' steps would be added up as one.
        return Err(Error::setting("distill", "`distill` and `profile` measure different steps: give one of them"));
    }
    let state = ModelState::import(&s.model)?;
    let shape = TrainShape {
        batch: 1,
        height: s.size,
        width: s.size,
        rois_per_image: s.rois,
        mask_rois_per_image: s.head_rois,
        keypoint_rois_per_image: s.head_rois,
        pooling: s.pooling,
    };
    let graph = training_graph(&state, &shape, &TrainOptions::default())?;
    let dir = tempfile::tempdir().map_err(|e| Error::Runtime(format!("temporary folder: {e}")))?;
    progress(Progress::Total(if s.distill { 2 * s.repeat as u64 + 3 } else { s.repeat as u64 + 2 }));
    let profile_prefix = dir.path().join("ort_");
    let options = WorkerOptions { profile: s.profile.then(|| profile_prefix.clone()), threads: s.threads, ..WorkerOptions::default() };
    let mut worker = Worker::start_with(&crate::runtime::env::train_python(s.train_python.as_deref())?, s.device, options)?;
    open_core(&mut worker, &graph, dir.path(), "plain")?;
    let feed = inputs(&state, &graph, &shape)?;
    progress(Progress::Step);
    let times: Vec<f64> = time_steps(&mut worker, &feed, s.repeat, None, progress)?.into_iter().map(|t| t.1).collect();
    let distill =
        if s.distill { Some(time_distilling(&mut worker, &state, &shape, &feed, &times, dir.path(), s.repeat, progress)?) } else { None };
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
        pooling: shape.pooling(),
        ort_step_ms: ort_ms,
        torch,
        ort_over_torch: None,
        step_wall_ms,
        ort_profile,
        distill,
    };
    r.ort_over_torch = r.torch_ms().map(|t| ort_ms / t);
    Ok(r)
}
