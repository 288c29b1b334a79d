//! End-to-end detection latency on one image at one thread count — the dense model in ONNX Runtime on its full
//! graph (what a user runs today), the dense model in tract (stage graphs + Rust post-processing), and channel
//! tickets in tract (files given, or made in memory at the sparsities given) and unstructured weight tickets
//! (made in memory at the weight sparsities given; they run on the sparse kernels where a layer gains,
//! docs/sparse.md) — with FLOPs, non-zero FLOPs, parameters, per-stage times, and ratios against both dense
//! baselines.
use super::{median, uniform, Progress};
use crate::detect::pipeline::{DetectParams, Detector, StageTimes};
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::prune::channel::{costs, flops::nonzero_flops, prune_channels, ChannelParams, FlopsAt};
use crate::prune::{PruneParams, Scope};
use crate::runtime::ort_check;
use crate::sparse::Kernels;
use ndarray::ArrayD;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

pub struct Settings {
    /// The dense detector (ONNX, torchvision's full export).
    pub model: PathBuf,
    /// Channel tickets of the same model.
    pub tickets: Vec<PathBuf>,
    /// Channel tickets made in memory at these channel sparsities (global L1, `round_to`).
    pub sparsities: Vec<f64>,
    pub round_to: usize,
    /// Unstructured tickets made in memory at these sparsities of the prunable weights.
    pub weight_sparsities: Vec<f64>,
    /// How the weight tickets are pruned.
    pub scope: Scope,
    /// Global weight tickets keep at least this fraction of every tensor (0: plain global).
    pub floor: f64,
    /// Kernels of the ticket rows: auto, dense or sparse.
    pub kernels: String,
    /// Side of the square test image (min_size = max_size = this).
    pub size: usize,
    /// Threads of both engines (0: one per core).
    pub threads: usize,
    /// Timed runs per variant after one warm-up.
    pub repeat: usize,
}

#[derive(Serialize)]
pub struct Row {
    pub variant: String,
    pub engine: &'static str,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub gflops: f64,
    /// FLOPs of the non-zero weights (what sparse kernels compute).
    pub nonzero_gflops: f64,
    pub params: usize,
    /// Median per-stage times (tract rows).
    pub stages: Option<StageTimes>,
    /// Layers on sparse kernels.
    pub sparse_layers: usize,
    pub detections: usize,
    pub over_ort_dense: f64,
    pub over_tract_dense: f64,
}

#[derive(Serialize)]
pub struct DetectBench {
    pub model: PathBuf,
    pub size: usize,
    pub threads: usize,
    pub repeat: usize,
    pub rows: Vec<Row>,
}

/// One run: detections, per-stage times (tract), layers on sparse kernels.
type Runner<'a> = Box<dyn FnMut() -> Result<(usize, Option<StageTimes>, usize)> + 'a>;

/// One variant: name, engine, GFLOPs, non-zero GFLOPs, parameters, its run.
type Variant<'a> = (String, &'static str, f64, f64, usize, Runner<'a>);

/// What the timing loop measured, per variant.
struct Measured {
    detections: Vec<usize>,
    sparse_layers: Vec<usize>,
    times_ms: Vec<Vec<f64>>,
    stage_times: Vec<Vec<StageTimes>>,
}

/// The settings checked; the kernels of the ticket rows.
fn check(s: &Settings) -> Result<Kernels> {
    if s.size == 0 || !s.size.is_multiple_of(32) {
        return Err(Error::setting("size", format!("`size` {}: give a positive multiple of 32", s.size)));
    }
    if s.repeat == 0 {
        return Err(Error::setting("repeat", "`repeat` must be at least 1"));
    }
    if s.weight_sparsities.iter().any(|s| !(0.0..1.0).contains(s)) || !(0.0..1.0).contains(&s.floor) {
        return Err(Error::setting("weight_sparsities", "`weight_sparsities` and `floor` must lie in [0, 1)"));
    }
    Kernels::parse(&s.kernels).ok_or_else(|| Error::setting("kernels", format!("`kernels` {}: give auto, dense or sparse", s.kernels)))
}

/// The models to run in tract: dense, the ticket files, the channel and weight tickets made in memory.
fn variants(s: &Settings, dense: &ModelState, kernels: Kernels, at: FlopsAt) -> Result<Vec<(String, ModelState, Kernels)>> {
    let mut variants: Vec<(String, ModelState, Kernels)> = vec![("dense".into(), dense.clone(), Kernels::Dense)];
    for t in &s.tickets {
        variants.push((t.display().to_string(), ModelState::import(t)?, kernels));
    }
    for &sp in &s.sparsities {
        let (ticket, r) = prune_channels(dense, &ChannelParams { sparsity: sp, round_to: s.round_to, flops_at: at, ..Default::default() })?;
        variants.push((format!("channel {:.0}% (−{:.0}% FLOPs)", 100.0 * sp, 100.0 * r.flops_removed), ticket, kernels));
    }
    for &sp in &s.weight_sparsities {
        let floor = (s.scope == Scope::Global && s.floor > 0.0).then_some(s.floor);
        let opts =
            PruneParams { sparsity: sp, scope: s.scope, modules: None, rounds: 1, round: 1, include_bias: false, min_layer_density: floor }
                .check()?;
        let mut ticket = dense.clone();
        crate::prune::prune(&mut ticket, &opts)?;
        let scope = match (s.scope, floor) {
            (Scope::Layer, _) => "layer-wise".to_string(),
            (Scope::Global, None) => "global".to_string(),
            (Scope::Global, Some(f)) => format!("global, {:.0}% floor", 100.0 * f),
        };
        variants.push((format!("weight {:.0}% {scope}", 100.0 * sp), ticket, kernels));
    }
    Ok(variants)
}

/// GFLOPs, non-zero GFLOPs and parameters of a model at `at`.
fn costs_of(s: &ModelState, at: &FlopsAt) -> (f64, f64, usize) {
    (costs(s, at).values().map(|c| c.flops).sum::<u64>() as f64 / 1e9, nonzero_flops(s, at) as f64 / 1e9, s.weights.total())
}

/// The dense model in ONNX Runtime on its full graph, then every variant in tract, ready to run on `img`.
fn runners<'a>(
    s: &Settings,
    dense: &ModelState,
    variants: Vec<(String, ModelState, Kernels)>,
    at: &FlopsAt,
    threads: usize,
    img: &'a ArrayD<f32>,
) -> Result<Vec<Variant<'a>>> {
    let mut params = DetectParams::from_model(dense);
    params.min_size = s.size;
    params.max_size = s.size;
    let bytes = dense.source.encode_inline(&Default::default())?;
    let input = dense.source.graph().input.first().map(|i| i.name().to_string()).unwrap_or_default();
    let mut session = ort_check::session_with_threads(&bytes, &s.model.display().to_string(), threads)?;
    let (f, nz, p) = costs_of(dense, at);
    let mut runners: Vec<Variant> = vec![(
        "dense".into(),
        "ORT full graph",
        f,
        nz,
        p,
        Box::new(move || {
            let t = ort::value::Tensor::from_array(img.clone()).map_err(|e| Error::Runtime(format!("ONNX Runtime: {e}")))?;
            let out = session.run(ort::inputs![input.as_str() => t]).map_err(|e| Error::Runtime(format!("ONNX Runtime: {e}")))?;
            Ok((out.iter().next().and_then(|(_, v)| v.shape().first().copied()).unwrap_or(0).max(0) as usize, None, 0))
        }),
    )];
    for (name, state, kernels) in variants {
        let (f, nz, p) = costs_of(&state, at);
        let mut det = Detector::new(state, DetectParams { kernels, ..params.clone() })?;
        runners.push((
            name,
            "tract",
            f,
            nz,
            p,
            Box::new(move || {
                let n = det.detect(img.view().into_dimensionality().map_err(|e| Error::Runtime(e.to_string()))?)?.labels.len();
                Ok((n, Some(det.last_times), det.sparse_layers.len()))
            }),
        ));
    }
    Ok(runners)
}

/// One warm-up each (plans for the canvas are built here), then the variants take turns so that drift in the
/// machine's load spreads over all of them.
fn measure(runners: &mut [Variant], repeat: usize, progress: &mut dyn FnMut(Progress)) -> Result<Measured> {
    progress(Progress::Total(((repeat + 1) * runners.len()) as u64));
    let n = runners.len();
    let mut m =
        Measured { detections: vec![0; n], sparse_layers: vec![0; n], times_ms: vec![Vec::new(); n], stage_times: vec![Vec::new(); n] };
    for (i, r) in runners.iter_mut().enumerate() {
        (m.detections[i], _, m.sparse_layers[i]) = (r.5)()?;
        progress(Progress::Step);
    }
    for _ in 0..repeat {
        for (i, r) in runners.iter_mut().enumerate() {
            let s = Instant::now();
            let (_, st, _) = std::hint::black_box((r.5)()?);
            m.times_ms[i].push(s.elapsed().as_secs_f64() * 1e3);
            m.stage_times[i].extend(st);
            progress(Progress::Step);
        }
    }
    progress(Progress::Done);
    Ok(m)
}

pub fn run(s: Settings, progress: &mut dyn FnMut(Progress)) -> Result<DetectBench> {
    let kernels = check(&s)?;
    let threads = crate::runtime::threads::resolve(s.threads);
    let dense = ModelState::import(&s.model)?;
    let at = FlopsAt { height: s.size, width: s.size, ..Default::default() };
    let variants = variants(&s, &dense, kernels, at)?;
    let img = uniform(&[3, s.size, s.size]);
    let mut runners = runners(&s, &dense, variants, &at, threads, &img)?;
    let m = measure(&mut runners, s.repeat, progress)?;
    let med: Vec<f64> = m.times_ms.iter().map(|t| median(t)).collect();
    let rows = runners
        .iter()
        .enumerate()
        .map(|(i, (name, engine, f, nz, p, _))| {
            let t = &m.times_ms[i];
            Row {
                variant: name.clone(),
                engine,
                median_ms: med[i],
                min_ms: t.iter().copied().fold(f64::INFINITY, f64::min),
                max_ms: t.iter().copied().fold(0.0, f64::max),
                gflops: *f,
                nonzero_gflops: *nz,
                params: *p,
                stages: (!m.stage_times[i].is_empty()).then(|| median_stages(&m.stage_times[i])),
                sparse_layers: m.sparse_layers[i],
                detections: m.detections[i],
                over_ort_dense: med[i] / med[0],
                over_tract_dense: med[i] / med[1],
            }
        })
        .collect();
    Ok(DetectBench { model: s.model, size: s.size, threads, repeat: s.repeat, rows })
}

/// Per-stage medians over runs.
fn median_stages(st: &[StageTimes]) -> StageTimes {
    let m = |f: fn(&StageTimes) -> f64| median(&st.iter().map(f).collect::<Vec<_>>());
    StageTimes {
        backbone_rpn_ms: m(|s| s.backbone_rpn_ms),
        box_head_ms: m(|s| s.box_head_ms),
        head_ms: m(|s| s.head_ms),
        total_ms: m(|s| s.total_ms),
    }
}
