//! `ticket bench detect`: end-to-end detection latency on one image at one thread count — the dense model in
//! ONNX Runtime on its full graph (what a user runs today), the dense model in tract (stage graphs + Rust
//! post-processing), and channel tickets in tract (files given with --tickets, or made in memory at the
//! --sparsities given) and unstructured weight tickets (made in memory at the --weight-sparsities given; they
//! run on the sparse kernels where a layer gains, docs/sparse.md) — with FLOPs, non-zero FLOPs, parameters,
//! per-stage times, and ratios against both dense baselines.
use super::{emit, table};
use crate::detect::pipeline::{DetectParams, Detector, StageTimes};
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::prune::channel::{costs, flops::nonzero_flops, prune_channels, ChannelParams, FlopsAt};
use crate::prune::{PruneParams, Scope};
use crate::runtime::ort_check;
use crate::sparse::Kernels;
use ndarray::{ArrayD, IxDyn};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The dense detector (ONNX, torchvision's full export).
    pub model: PathBuf,
    /// Channel tickets of the same model (files written by `ticket prune --structure channel`).
    #[arg(long, value_delimiter = ',')]
    pub tickets: Vec<PathBuf>,
    /// Also make channel tickets in memory at these channel sparsities (global L1, --round-to).
    #[arg(long, value_delimiter = ',')]
    pub sparsities: Vec<f64>,
    #[arg(long, default_value_t = 8)]
    pub round_to: usize,
    /// Also make unstructured (weight-magnitude) tickets in memory at these sparsities of the prunable weights.
    #[arg(long, value_delimiter = ',')]
    pub weight_sparsities: Vec<f64>,
    /// How the weight tickets are pruned: every tensor to the same sparsity (layer), or ranked together (global).
    #[arg(long, value_enum, default_value_t = Scope::Layer)]
    pub scope: Scope,
    /// Global weight tickets keep at least this fraction of every tensor, so no layer collapses (0: plain global).
    #[arg(long, default_value_t = 0.05)]
    pub floor: f64,
    /// Kernels of the ticket rows (the dense tract row always runs tract's dense kernels).
    #[arg(long, default_value = "auto", value_parser = ["auto", "dense", "sparse"])]
    pub kernels: String,
    /// Side of the square test image; min_size = max_size = this, so the canvas is the image.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// Threads for both engines (tract matmuls, ORT intra-op); default one per core.
    #[arg(long, default_value_t = 0, value_parser = crate::runtime::threads::parse_threads)]
    pub threads: usize,
    /// Timed runs per variant (after one warm-up), the variants taking turns.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
}

#[derive(Serialize)]
struct Row {
    variant: String,
    engine: &'static str,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    gflops: f64,
    /// FLOPs of the non-zero weights (what sparse kernels compute).
    nonzero_gflops: f64,
    params: usize,
    /// Median per-stage times (tract rows).
    stages: Option<StageTimes>,
    /// Layers on sparse kernels.
    sparse_layers: usize,
    detections: usize,
    over_ort_dense: f64,
    over_tract_dense: f64,
}

#[derive(Serialize)]
struct Report {
    model: PathBuf,
    size: usize,
    threads: usize,
    repeat: usize,
    rows: Vec<Row>,
}

/// Uniform [0, 1) values from a fixed generator: every variant sees the same image.
fn image(size: usize) -> ArrayD<f32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    ArrayD::from_shape_simple_fn(IxDyn(&[3, size, size]), || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    })
}

/// One run: detections, per-stage times (tract), layers on sparse kernels.
type Runner<'a> = Box<dyn FnMut() -> Result<(usize, Option<StageTimes>, usize)> + 'a>;

/// One variant: name, engine, GFLOPs, non-zero GFLOPs, parameters, its run.
type Variant<'a> = (String, &'static str, f64, f64, usize, Runner<'a>);

pub fn run(args: Args, json: bool) -> Result<()> {
    if args.size == 0 || !args.size.is_multiple_of(32) {
        return Err(Error::Input(format!("--size {}: give a positive multiple of 32", args.size)));
    }
    if args.repeat == 0 {
        return Err(Error::Input("--repeat must be at least 1".into()));
    }
    if args.weight_sparsities.iter().any(|s| !(0.0..1.0).contains(s)) || !(0.0..1.0).contains(&args.floor) {
        return Err(Error::Input("--weight-sparsities and --floor must lie in [0, 1)".into()));
    }
    let kernels =
        Kernels::parse(&args.kernels).ok_or_else(|| Error::Input(format!("--kernels {}: give auto, dense or sparse", args.kernels)))?;
    let threads = crate::runtime::threads::resolve(args.threads);
    let dense = ModelState::import(&args.model)?;
    let mut params = DetectParams::from_model(&dense);
    params.min_size = args.size;
    params.max_size = args.size;
    let at = FlopsAt { height: args.size, width: args.size, ..Default::default() };
    let flops = |s: &ModelState| costs(s, &at).values().map(|c| c.flops).sum::<u64>() as f64 / 1e9;
    let nz_flops = |s: &ModelState| nonzero_flops(s, &at) as f64 / 1e9;
    let param_count = |s: &ModelState| s.weights.total();

    let mut variants: Vec<(String, ModelState, Kernels)> = vec![("dense".into(), dense.clone(), Kernels::Dense)];
    for t in &args.tickets {
        variants.push((t.display().to_string(), ModelState::import(t)?, kernels));
    }
    for &s in &args.sparsities {
        let (ticket, r) =
            prune_channels(&dense, &ChannelParams { sparsity: s, round_to: args.round_to, flops_at: at, ..Default::default() })?;
        variants.push((format!("channel {:.0}% (−{:.0}% FLOPs)", 100.0 * s, 100.0 * r.flops_removed), ticket, kernels));
    }
    for &s in &args.weight_sparsities {
        let floor = (args.scope == Scope::Global && args.floor > 0.0).then_some(args.floor);
        let opts = PruneParams {
            sparsity: s,
            scope: args.scope,
            modules: None,
            rounds: 1,
            round: 1,
            include_bias: false,
            min_layer_density: floor,
        }
        .check()?;
        let mut ticket = dense.clone();
        crate::prune::prune(&mut ticket, &opts)?;
        let scope = match (args.scope, floor) {
            (Scope::Layer, _) => "layer-wise".to_string(),
            (Scope::Global, None) => "global".to_string(),
            (Scope::Global, Some(f)) => format!("global, {:.0}% floor", 100.0 * f),
        };
        variants.push((format!("weight {:.0}% {scope}", 100.0 * s), ticket, kernels));
    }

    let img = image(args.size);
    let bytes = dense.source.encode_inline(&Default::default())?;
    let input = dense.source.graph().input.first().map(|i| i.name().to_string()).unwrap_or_default();
    let mut session = ort_check::session_with_threads(&bytes, &args.model.display().to_string(), threads)?;
    let mut runners: Vec<Variant> = Vec::new();
    let ort_img = img.clone();
    runners.push((
        "dense".into(),
        "ORT full graph",
        flops(&dense),
        nz_flops(&dense),
        param_count(&dense),
        Box::new(move || {
            let t = ort::value::Tensor::from_array(ort_img.clone()).map_err(|e| Error::Runtime(format!("ONNX Runtime: {e}")))?;
            let out = session.run(ort::inputs![input.as_str() => t]).map_err(|e| Error::Runtime(format!("ONNX Runtime: {e}")))?;
            Ok((out.iter().next().and_then(|(_, v)| v.shape().first().copied()).unwrap_or(0).max(0) as usize, None, 0))
        }),
    ));
    for (name, state, kernels) in variants {
        let (f, nz, p) = (flops(&state), nz_flops(&state), param_count(&state));
        let mut det = Detector::new(state, DetectParams { kernels, ..params.clone() })?;
        let view = img.clone();
        runners.push((
            name,
            "tract",
            f,
            nz,
            p,
            Box::new(move || {
                let n = det.detect(view.view().into_dimensionality().map_err(|e| Error::Runtime(e.to_string()))?)?.labels.len();
                Ok((n, Some(det.last_times), det.sparse_layers.len()))
            }),
        ));
    }
    // One warm-up each (plans for the canvas are built here), then the variants take turns so that drift in
    // the machine's load spreads over all of them.
    let bar = super::progress(((args.repeat + 1) * runners.len()) as u64, "bench", json);
    let mut counts = vec![0usize; runners.len()];
    let mut sparse_layers = vec![0usize; runners.len()];
    for (i, r) in runners.iter_mut().enumerate() {
        (counts[i], _, sparse_layers[i]) = (r.5)()?;
        bar.inc(1);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    let mut stage_times: Vec<Vec<StageTimes>> = vec![Vec::new(); runners.len()];
    for _ in 0..args.repeat {
        for (i, r) in runners.iter_mut().enumerate() {
            let s = Instant::now();
            let (_, st, _) = std::hint::black_box((r.5)()?);
            times[i].push(s.elapsed().as_secs_f64() * 1e3);
            stage_times[i].extend(st);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let med: Vec<f64> = times.iter().map(|t| super::median(t)).collect();
    let rows = runners
        .iter()
        .zip(&times)
        .zip(&med)
        .zip(&counts)
        .zip(&stage_times)
        .zip(&sparse_layers)
        .map(|((((((name, engine, f, nz, p, _), t), &m), &n), st), &sl)| Row {
            variant: name.clone(),
            engine,
            median_ms: m,
            min_ms: t.iter().copied().fold(f64::INFINITY, f64::min),
            max_ms: t.iter().copied().fold(0.0, f64::max),
            gflops: *f,
            nonzero_gflops: *nz,
            params: *p,
            stages: (!st.is_empty()).then(|| median_stages(st)),
            sparse_layers: sl,
            detections: n,
            over_ort_dense: m / med[0],
            over_tract_dense: m / med[1],
        })
        .collect();
    let report = Report { model: args.model, size: args.size, threads, repeat: args.repeat, rows };
    emit(json, &report, |r| {
        let body: Vec<Vec<String>> = r
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.variant.clone(),
                    x.engine.to_string(),
                    format!("{:.1}", x.gflops),
                    format!("{:.1}", x.nonzero_gflops),
                    format!("{:.2}", x.params as f64 / 1e6),
                    x.sparse_layers.to_string(),
                    format!("{:.0}", x.median_ms),
                    format!("{:.0}–{:.0}", x.min_ms, x.max_ms),
                    x.stages.map(|s| format!("{:.0} / {:.0} / {:.0}", s.backbone_rpn_ms, s.box_head_ms, s.head_ms)).unwrap_or_default(),
                    format!("{:.2}", x.over_ort_dense),
                    format!("{:.2}", x.over_tract_dense),
                ]
            })
            .collect();
        format!(
            "{}: one {}×{} image, {} threads in both engines, median of {} runs after a warm-up (variants in turn)\n",
            r.model.display(),
            r.size,
            r.size,
            r.threads,
            r.repeat
        ) + &table(
            &[
                "Variant",
                "Engine",
                "GFLOPs",
                "non-zero",
                "M params",
                "sparse layers",
                "ms",
                "range",
                "stage 1 / box / head ms",
                "/ORT dense",
                "/tract dense",
            ],
            &body,
        ) + "GFLOPs: convs and linears at this canvas, 1000 box RoIs, 100 mask/keypoint RoIs; non-zero: of the non-zero weights only\n"
            + "sparse layers: conv/linear layers on the sparse kernels (stage 1 counted after the warm-up)\n"
    });
    Ok(())
}

/// Per-stage medians over runs.
fn median_stages(st: &[StageTimes]) -> StageTimes {
    let m = |f: fn(&StageTimes) -> f64| super::median(&st.iter().map(f).collect::<Vec<_>>());
    StageTimes {
        backbone_rpn_ms: m(|s| s.backbone_rpn_ms),
        box_head_ms: m(|s| s.box_head_ms),
        head_ms: m(|s| s.head_ms),
        total_ms: m(|s| s.total_ms),
    }
}
