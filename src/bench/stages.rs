//! The latency of each tract stage graph (backbone+RPN, box head, mask / keypoint head) in tract and in ONNX
//! Runtime, for the dense model and a globally pruned copy of it.
use super::{elapsed_ms, median, uniform, Progress};
use crate::error::{Error, Result};
use crate::graph::stages;
use crate::model::{ModelKind, ModelState};
use crate::onnx::proto::ModelProto;
use crate::prune::{self, PruneParams, Scope};
use crate::runtime::{ort_check, tract_stage::TractStage};
use ndarray::ArrayD;
use prost::Message;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

pub struct Settings {
    pub model: PathBuf,
    /// Global magnitude sparsity of the pruned copy.
    pub sparsity: f64,
    pub repeat: usize,
    /// Side of the square canvas stage 1 runs on.
    pub size: usize,
    /// RoIs through the box head.
    pub rois: usize,
    /// RoIs through the mask or keypoint head.
    pub head_rois: usize,
    /// Threads for both engines, resolved (`runtime::threads::resolve`).
    pub threads: usize,
}

#[derive(Serialize)]
pub struct EngineTiming {
    pub dense_ms: f64,
    pub pruned_ms: f64,
    pub pruned_over_dense: f64,
    /// Plan optimisation (tract) or session creation (ORT), not in the run times.
    pub dense_build_ms: f64,
    pub pruned_build_ms: f64,
}

#[derive(Serialize)]
pub struct StageTiming {
    pub stage: &'static str,
    pub input: Vec<usize>,
    pub tract: EngineTiming,
    pub ort: EngineTiming,
    pub tract_over_ort_dense: f64,
    pub tract_over_ort_pruned: f64,
}

#[derive(Serialize)]
pub struct StagesBench {
    pub model: PathBuf,
    pub kind: &'static str,
    pub repeat: usize,
    pub target_sparsity: f64,
    /// Zeros over all weights of the pruned copy (biases and normalisation parameters stay dense).
    pub network_sparsity: f64,
    pub tract_threads: usize,
    pub ort_threads: usize,
    pub stages: Vec<StageTiming>,
}

/// Emits one stage graph from a model state (the dense one or the pruned copy).
type Emitter = Box<dyn Fn(&ModelState) -> Result<ModelProto>>;

/// One stage graph to time: its name, its input shape and how to emit it.
struct StageSpec {
    name: &'static str,
    input: Vec<usize>,
    emit: Emitter,
}

fn stage_specs(state: &ModelState, size: usize, rois: usize, head_rois: usize) -> Result<Vec<StageSpec>> {
    let c = stages::feature_channels(state)?;
    let mut specs = vec![
        StageSpec { name: "backbone+RPN", input: vec![1, 3, size, size], emit: Box::new(move |s| stages::backbone_rpn(s, size, size)) },
        StageSpec { name: "box head", input: vec![rois, c, 7, 7], emit: Box::new(move |s| stages::box_stage(s, rois)) },
    ];
    match state.arch.kind {
        ModelKind::MaskRcnn => specs.push(StageSpec {
            name: "mask head",
            input: vec![head_rois, c, 14, 14],
            emit: Box::new(move |s| stages::mask_stage(s, head_rois)),
        }),
        ModelKind::KeypointRcnn => specs.push(StageSpec {
            name: "keypoint head",
            input: vec![head_rois, c, 14, 14],
            emit: Box::new(move |s| stages::keypoint_stage(s, head_rois)),
        }),
        _ => {}
    }
    Ok(specs)
}

/// A stage ready to run (plan optimised or session created, input bound): each call is one run, in ms.
type Runner<'a> = Box<dyn FnMut() -> Result<f64> + 'a>;

/// (build ms, runner) in tract. The input copy each run consumes is made before the clock starts.
fn tract_runner<'a>(name: &str, graph: &ModelProto, x: &'a ArrayD<f32>) -> Result<(f64, Runner<'a>)> {
    let s = Instant::now();
    let stage = TractStage::new(name, graph)?;
    let build = elapsed_ms(s);
    Ok((
        build,
        Box::new(move || {
            let input = x.clone();
            let s = Instant::now();
            std::hint::black_box(stage.run(vec![input])?);
            Ok(elapsed_ms(s))
        }),
    ))
}

/// (build ms, runner) in ONNX Runtime, on one session reused for every run.
fn ort_runner<'a>(name: &str, graph: &ModelProto, x: &'a ArrayD<f32>, threads: usize) -> Result<(f64, Runner<'a>)> {
    let what = name.to_string();
    let input = graph.graph.as_ref().and_then(|g| g.input.first()).map(|i| i.name().to_string()).unwrap_or_default();
    let s = Instant::now();
    let mut session = ort_check::session_with_threads(&graph.encode_to_vec(), name, threads)?;
    let build = elapsed_ms(s);
    Ok((
        build,
        Box::new(move || {
            let err = |e: ort::Error| Error::Runtime(format!("{what}: ONNX Runtime: {e}"));
            let feed = ort::inputs![input.as_str() => ort::value::TensorRef::from_array_view(x.view()).map_err(err)?];
            let s = Instant::now();
            std::hint::black_box(session.run(feed).map_err(err)?);
            Ok(elapsed_ms(s))
        }),
    ))
}

pub fn run(s: Settings, progress: &mut dyn FnMut(Progress)) -> Result<StagesBench> {
    if s.repeat == 0 || s.rois == 0 || s.head_rois == 0 {
        return Err(Error::setting("repeat", "`repeat`, `rois` and `head_rois` must be at least 1"));
    }
    let opts = PruneParams {
        sparsity: s.sparsity,
        scope: Scope::Global,
        modules: None,
        rounds: 1,
        round: 1,
        include_bias: false,
        min_layer_density: None,
    }
    .check()?;
    let dense = ModelState::import(&s.model)?;
    if !dense.arch.kind.is_detector() {
        return Err(Error::input(&s.model, format!("is a {}, not a two-stage detector: it has no stage graphs", dense.arch.kind.label())));
    }
    let specs = stage_specs(&dense, s.size, s.rois, s.head_rois)?;
    let mut pruned = dense.clone();
    let pruned_report = prune::prune(&mut pruned, &opts)?;
    progress(Progress::Total((specs.len() * (s.repeat + 1)) as u64));
    let mut rows = Vec::new();
    for spec in &specs {
        rows.push(time_stage(spec, [&dense, &pruned], s.repeat, s.threads, progress)?);
    }
    progress(Progress::Done);
    Ok(StagesBench {
        model: s.model,
        kind: dense.arch.kind.label(),
        repeat: s.repeat,
        target_sparsity: s.sparsity,
        network_sparsity: pruned_report.network_sparsity,
        tract_threads: s.threads,
        ort_threads: s.threads,
        stages: rows,
    })
}

/// One stage of the dense and the pruned model in both engines.
fn time_stage(
    spec: &StageSpec,
    states: [&ModelState; 2],
    repeat: usize,
    threads: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<StageTiming> {
    let x = uniform(&spec.input);
    // tract dense, tract pruned, ORT dense, ORT pruned.
    let mut built = Vec::new();
    for state in states {
        built.push(tract_runner(spec.name, &(spec.emit)(state)?, &x)?);
    }
    for state in states {
        built.push(ort_runner(spec.name, &(spec.emit)(state)?, &x, threads)?);
    }
    let (build_ms, mut runners): (Vec<f64>, Vec<Runner>) = built.into_iter().unzip();
    // Round robin after one warm-up each, so that a noisy machine's drift hits all four alike.
    let mut times = vec![Vec::with_capacity(repeat); runners.len()];
    for round in 0..=repeat {
        for (t, run) in times.iter_mut().zip(&mut runners) {
            let ms = run()?;
            if round > 0 {
                t.push(ms);
            }
        }
        progress(Progress::Step);
    }
    drop(runners);
    let ms: Vec<f64> = times.into_iter().map(|t| median(&t)).collect();
    let engine = |d: usize, p: usize| EngineTiming {
        dense_ms: ms[d],
        pruned_ms: ms[p],
        pruned_over_dense: ms[p] / ms[d],
        dense_build_ms: build_ms[d],
        pruned_build_ms: build_ms[p],
    };
    Ok(StageTiming {
        stage: spec.name,
        input: spec.input.clone(),
        tract: engine(0, 1),
        ort: engine(2, 3),
        tract_over_ort_dense: ms[0] / ms[2],
        tract_over_ort_pruned: ms[1] / ms[3],
    })
}
