//! `ticket bench`: speed goals measured against baselines in the same run, printed as ratios.
use super::{emit, table};
use crate::error::{Error, Result};
use crate::graph::stages;
use crate::model::{ModelKind, ModelState};
use crate::onnx::proto::ModelProto;
use crate::prune::{self, select, PruneParams, Scope};
use crate::runtime::{ort_check, tract_stage::TractStage};
use ndarray::{ArrayD, IxDyn};
use prost::Message;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// A global magnitude mask over a model's prunable weights vs torch.nn.utils.prune.global_unstructured
    /// on the same weights, and vs one plain copy of the weights.
    Prune {
        model: PathBuf,
        #[arg(long, default_value_t = 0.8)]
        sparsity: f64,
        #[arg(long, default_value_t = 7)]
        repeat: usize,
        /// Python with torch (default: $TICKET_TORCH_PYTHON, else the one `ticket setup --torch` made, else
        /// .venv-torch/bin/python); "none" skips the torch baseline.
        #[arg(long)]
        torch_python: Option<String>,
        /// Folder of the tools/ scripts (default: ./tools in a checkout, else the data folder's).
        #[arg(long)]
        tools: Option<PathBuf>,
    },
    /// Latency of each tract stage graph (backbone+RPN, box head, mask / keypoint head) in tract and in ONNX
    /// Runtime, for the dense model and a globally pruned copy of it.
    Stages {
        model: PathBuf,
        /// Global magnitude sparsity of the pruned copy.
        #[arg(long, default_value_t = 0.8)]
        sparsity: f64,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Side of the square canvas stage 1 runs on (a multiple of 32).
        #[arg(long, default_value_t = 320)]
        size: usize,
        /// RoIs through the box head (torchvision keeps 1000 proposals per image at test time).
        #[arg(long, default_value_t = 1000)]
        rois: usize,
        /// RoIs through the mask or keypoint head (torchvision's 100 detections per image).
        #[arg(long, default_value_t = 100)]
        head_rois: usize,
        /// Threads for both engines (tract matmuls, ORT intra-op); default one per core.
        #[arg(long, default_value_t = 0, value_parser = crate::runtime::threads::parse_threads)]
        threads: usize,
    },
    /// One ONNX Runtime training step (forward, backward, SGD) on the emitted training core vs one PyTorch
    /// eager step of the torchvision model with the same weights, canvas and RoI count.
    Train(super::bench_train::Args),
    /// End-to-end detection latency at one thread count: dense in ONNX Runtime (full graph) and in tract,
    /// channel tickets in tract, with FLOPs and parameters.
    Detect(super::bench_detect::Args),
    /// Per-layer speed-up of the sparse kernels over tract's dense ones against density, for each kernel
    /// shape of the full-size R-CNN graphs: the break-even curve.
    Sparse(super::bench_sparse::Args),
}

/// Runs a tools/ baseline script with `--json` and returns its report; None when `python` is "none". The
/// Python and the tools folder default to `runtime::env`'s.
pub(crate) fn torch_baseline(
    python: Option<&str>,
    tools: Option<&std::path::Path>,
    script: &str,
    args: &[std::ffi::OsString],
) -> Result<Option<serde_json::Value>> {
    if python == Some("none") {
        return Ok(None);
    }
    let python = match python {
        Some(p) => p.to_string(),
        None => crate::runtime::env::python(crate::runtime::env::Venv::Torch)?.display().to_string(),
    };
    let script = tools.map(std::path::Path::to_path_buf).unwrap_or_else(crate::runtime::env::tools_dir).join(script);
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .arg("--json")
        .output()
        .map_err(|e| Error::Runtime(format!("{python}: cannot run the torch baseline ({e}); run `ticket setup --torch` (or `tools/setup.sh torch`) or pass --torch-python none")))?;
    if !out.status.success() {
        return Err(Error::Runtime(format!(
            "{}: torch baseline failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        )));
    }
    serde_json::from_slice(&out.stdout).map(Some).map_err(|e| Error::Runtime(format!("{}: unreadable output ({e})", script.display())))
}

fn median_ms(repeat: usize, mut f: impl FnMut()) -> f64 {
    let times: Vec<f64> = (0..repeat.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    super::median(&times)
}

fn elapsed_ms(s: Instant) -> f64 {
    s.elapsed().as_secs_f64() * 1e3
}

#[derive(Serialize)]
struct PruneBench {
    model: PathBuf,
    weights: usize,
    tensors: usize,
    threads: usize,
    ticket_global_mask_ms: f64,
    ticket_copy_ms: f64,
    torch: Option<serde_json::Value>,
    /// torch global_unstructured time / ticket's (goal ≥ 5).
    speedup_vs_torch: Option<f64>,
    /// ticket's mask time / one plain copy of the weights (goal ≤ 2).
    mask_over_copy: f64,
}

impl BenchCommand {
    /// tract's threads for the benchmarks that run tract (0: one per core), set process-wide by
    /// `cli::dispatch`; None for those that do not.
    pub fn tract_threads(&self) -> Option<usize> {
        match self {
            BenchCommand::Stages { threads, .. } => Some(*threads),
            BenchCommand::Detect(a) => Some(a.threads),
            BenchCommand::Sparse(a) => Some(a.threads),
            BenchCommand::Prune { .. } | BenchCommand::Train(_) => None,
        }
    }
}

pub fn run(cmd: BenchCommand, json: bool) -> Result<()> {
    match cmd {
        BenchCommand::Prune { model, sparsity, repeat, torch_python, tools } => {
            bench_prune(model, sparsity, repeat, torch_python, tools, json)
        }
        BenchCommand::Stages { model, sparsity, repeat, size, rois, head_rois, threads } => {
            bench_stages(model, sparsity, repeat, size, rois, head_rois, crate::runtime::threads::resolve(threads), json)
        }
        BenchCommand::Train(args) => super::bench_train::run(args, json),
        BenchCommand::Detect(args) => super::bench_detect::run(args, json),
        BenchCommand::Sparse(args) => super::bench_sparse::run(args, json),
    }
}

fn bench_prune(
    model: PathBuf,
    sparsity: f64,
    repeat: usize,
    torch_python: Option<String>,
    tools: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let state = ModelState::import(&model)?;
    let weights: Vec<&[f32]> = state.prunable().map(|w| &w.values[..]).collect();
    let n: usize = weights.iter().map(|w| w.len()).sum();
    let k = ((n as f64) * (1.0 - sparsity)).round() as usize;
    let bar = super::progress(2, "bench", json);
    let inputs: Vec<select::Input> = weights.iter().map(|v| select::Input { values: v, prev: None }).collect();
    let mask_ms = median_ms(repeat, || {
        std::hint::black_box(select::keep_top_k(&inputs, k));
    });
    bar.inc(1);
    let copy_ms = median_ms(repeat, || {
        let c: Vec<Vec<f32>> = weights.iter().map(|w| w.to_vec()).collect();
        std::hint::black_box(c);
    });
    bar.inc(1);
    bar.finish_and_clear();
    let torch = torch_baseline(
        torch_python.as_deref(),
        tools.as_deref(),
        "bench_prune_torch.py",
        &[
            "--model".into(),
            model.clone().into_os_string(),
            "--sparsity".into(),
            sparsity.to_string().into(),
            "--repeat".into(),
            repeat.to_string().into(),
        ],
    )?;
    let torch_ms = torch.as_ref().and_then(|t| t["torch_global_unstructured_ms"].as_f64());
    let r = PruneBench {
        model,
        weights: n,
        tensors: weights.len(),
        threads: crate::runtime::threads::cores(),
        ticket_global_mask_ms: mask_ms,
        ticket_copy_ms: copy_ms,
        speedup_vs_torch: torch_ms.map(|t| t / mask_ms),
        torch,
        mask_over_copy: mask_ms / copy_ms,
    };
    emit(json, &r, |r| {
        let mut s = format!(
            "{}: {} prunable weights in {} tensors, {} threads\nticket global mask: {:.1} ms (median of {repeat})\none plain copy:      {:.1} ms  → mask/copy = {:.2} (goal ≤ 2)\n",
            r.model.display(), r.weights, r.tensors, r.threads, r.ticket_global_mask_ms, r.ticket_copy_ms, r.mask_over_copy
        );
        if let (Some(t), Some(x)) = (torch_ms, r.speedup_vs_torch) {
            s += &format!("torch global_unstructured: {t:.1} ms → ticket is {x:.1}× faster (goal ≥ 5)\n");
        }
        s
    });
    Ok(())
}

#[derive(Serialize)]
struct EngineTiming {
    dense_ms: f64,
    pruned_ms: f64,
    pruned_over_dense: f64,
    /// Plan optimisation (tract) or session creation (ORT), not in the run times.
    dense_build_ms: f64,
    pruned_build_ms: f64,
}

#[derive(Serialize)]
struct StageTiming {
    stage: &'static str,
    input: Vec<usize>,
    tract: EngineTiming,
    ort: EngineTiming,
    tract_over_ort_dense: f64,
    tract_over_ort_pruned: f64,
}

#[derive(Serialize)]
struct StagesBench {
    model: PathBuf,
    kind: &'static str,
    repeat: usize,
    target_sparsity: f64,
    /// Zeros over all weights of the pruned copy (biases and normalisation parameters stay dense).
    network_sparsity: f64,
    tract_threads: usize,
    ort_threads: usize,
    stages: Vec<StageTiming>,
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

/// Uniform [0, 1) values from a fixed generator: the same input for every engine and variant.
fn uniform(shape: &[usize]) -> ArrayD<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    })
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

#[allow(clippy::too_many_arguments)]
fn bench_stages(
    model: PathBuf,
    sparsity: f64,
    repeat: usize,
    size: usize,
    rois: usize,
    head_rois: usize,
    threads: usize,
    json: bool,
) -> Result<()> {
    if repeat == 0 || rois == 0 || head_rois == 0 {
        return Err(Error::Input("--repeat, --rois and --head-rois must be at least 1".into()));
    }
    let opts =
        PruneParams { sparsity, scope: Scope::Global, modules: None, rounds: 1, round: 1, include_bias: false, min_layer_density: None }
            .check()?;
    let dense = ModelState::import(&model)?;
    if !dense.arch.kind.is_detector() {
        return Err(Error::input(&model, format!("is a {}, not a two-stage detector: it has no stage graphs", dense.arch.kind.label())));
    }
    let specs = stage_specs(&dense, size, rois, head_rois)?;
    let mut pruned = dense.clone();
    let pruned_report = prune::prune(&mut pruned, &opts)?;

    let bar = super::progress((specs.len() * (repeat + 1)) as u64, "stages", json);
    let mut rows = Vec::new();
    for spec in &specs {
        let x = uniform(&spec.input);
        // tract dense, tract pruned, ORT dense, ORT pruned.
        let mut built = Vec::new();
        for state in [&dense, &pruned] {
            built.push(tract_runner(spec.name, &(spec.emit)(state)?, &x)?);
        }
        for state in [&dense, &pruned] {
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
            bar.inc(1);
        }
        drop(runners);
        let ms: Vec<f64> = times.into_iter().map(|t| super::median(&t)).collect();
        let engine = |d: usize, p: usize| EngineTiming {
            dense_ms: ms[d],
            pruned_ms: ms[p],
            pruned_over_dense: ms[p] / ms[d],
            dense_build_ms: build_ms[d],
            pruned_build_ms: build_ms[p],
        };
        rows.push(StageTiming {
            stage: spec.name,
            input: spec.input.clone(),
            tract: engine(0, 1),
            ort: engine(2, 3),
            tract_over_ort_dense: ms[0] / ms[2],
            tract_over_ort_pruned: ms[1] / ms[3],
        });
    }
    bar.finish_and_clear();
    let report = StagesBench {
        model,
        kind: dense.arch.kind.label(),
        repeat,
        target_sparsity: sparsity,
        network_sparsity: pruned_report.network_sparsity,
        tract_threads: threads,
        ort_threads: threads,
        stages: rows,
    };
    emit(json, &report, |r| {
        let mut body = Vec::new();
        for s in &r.stages {
            let shape = s.input.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×");
            for (engine, t, ratio) in [("tract", &s.tract, format!("{:.2}", s.tract_over_ort_dense)), ("ORT", &s.ort, String::new())] {
                body.push(vec![
                    if engine == "tract" { format!("{} [{shape}]", s.stage) } else { String::new() },
                    engine.to_string(),
                    format!("{:.1}", t.dense_ms),
                    format!("{:.1}", t.pruned_ms),
                    format!("{:.2}", t.pruned_over_dense),
                    ratio,
                ]);
            }
        }
        format!(
            "{} ({}), median of {} runs after one warm-up, the four variants in turn; pruned copy: global {}, network sparsity {}\n\
             tract: {} matmul threads (tract-linalg multithread-mm), ONNX Runtime: {} intra-op threads\n",
            r.model.display(),
            r.kind,
            r.repeat,
            super::pct(r.target_sparsity),
            super::pct(r.network_sparsity),
            r.tract_threads,
            r.ort_threads
        ) + &table(&["Stage [input]", "Engine", "Dense ms", "Pruned ms", "Pruned/dense", "tract/ORT"], &body)
            + "tract/ORT compares the dense times; plan building and session creation are not timed (see --json)\n"
    });
    Ok(())
}
