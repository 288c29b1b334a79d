//! `ticket bench detect`: end-to-end detection latency on one image at one thread count — the dense model in
//! ONNX Runtime on its full graph (what a user runs today), the dense model in tract (stage graphs + Rust
//! post-processing), and channel tickets in tract (files given with --tickets, or made in memory at the
//! --sparsities given) — with FLOPs and parameters, and ratios against both dense baselines.
use super::{emit, table};
use crate::detect::pipeline::{DetectParams, Detector};
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::prune::channel::{costs, prune_channels, ChannelParams, FlopsAt};
use crate::runtime::{ort_check, tract_stage};
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
    /// Side of the square test image; min_size = max_size = this, so the canvas is the image.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// Threads for both engines (tract matmuls, ORT intra-op); default one per core.
    #[arg(long, default_value_t = 0, value_parser = crate::runtime::tract_stage::parse_threads)]
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
    params: usize,
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

type Runner<'a> = Box<dyn FnMut() -> Result<usize> + 'a>;

pub fn run(args: Args, json: bool) -> Result<()> {
    if args.size == 0 || !args.size.is_multiple_of(32) {
        return Err(Error::Input(format!("--size {}: give a positive multiple of 32", args.size)));
    }
    if args.repeat == 0 {
        return Err(Error::Input("--repeat must be at least 1".into()));
    }
    let threads = tract_stage::resolve_threads(args.threads);
    let dense = ModelState::import(&args.model)?;
    let mut params = DetectParams::from_model(&dense);
    params.min_size = args.size;
    params.max_size = args.size;
    params.threads = threads;
    let at = FlopsAt { height: args.size, width: args.size, ..Default::default() };
    let flops = |s: &ModelState| costs(s, &at).values().map(|c| c.flops).sum::<u64>() as f64 / 1e9;
    let param_count = |s: &ModelState| s.weights.total();

    let mut variants: Vec<(String, ModelState)> = vec![("dense".into(), dense.clone())];
    for t in &args.tickets {
        variants.push((t.display().to_string(), ModelState::import(t)?));
    }
    for &s in &args.sparsities {
        let (ticket, r) = prune_channels(&dense, &ChannelParams { sparsity: s, round_to: args.round_to, flops_at: at, ..Default::default() })?;
        variants.push((format!("channel {:.0}% (−{:.0}% FLOPs)", 100.0 * s, 100.0 * r.flops_removed), ticket));
    }

    let img = image(args.size);
    let bytes = dense.source.encode_inline(&Default::default())?;
    let input = dense.source.graph().input.first().map(|i| i.name().to_string()).unwrap_or_default();
    let mut session = ort_check::session_with_threads(&bytes, &args.model.display().to_string(), threads)?;
    let mut runners: Vec<(String, &'static str, f64, usize, Runner)> = Vec::new();
    let ort_img = img.clone();
    runners.push((
        "dense".into(),
        "ORT full graph",
        flops(&dense),
        param_count(&dense),
        Box::new(move || {
            let t = ort::value::Tensor::from_array(ort_img.clone()).map_err(|e| Error::Runtime(format!("ONNX Runtime: {e}")))?;
            let out = session.run(ort::inputs![input.as_str() => t]).map_err(|e| Error::Runtime(format!("ONNX Runtime: {e}")))?;
            Ok(out.iter().next().and_then(|(_, v)| v.shape().first().copied()).unwrap_or(0).max(0) as usize)
        }),
    ));
    for (name, state) in variants {
        let (f, p) = (flops(&state), param_count(&state));
        let mut det = Detector::new(state, params.clone())?;
        let view = img.clone();
        runners.push((
            name,
            "tract",
            f,
            p,
            Box::new(move || Ok(det.detect(view.view().into_dimensionality().map_err(|e| Error::Runtime(e.to_string()))?)?.labels.len())),
        ));
    }
    // One warm-up each (plans for the canvas are built here), then the variants take turns so that drift in
    // the machine's load spreads over all of them.
    let bar = super::progress(((args.repeat + 1) * runners.len()) as u64, "bench", json);
    let mut counts = vec![0usize; runners.len()];
    for (i, r) in runners.iter_mut().enumerate() {
        counts[i] = (r.4)()?;
        bar.inc(1);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    for _ in 0..args.repeat {
        for (i, r) in runners.iter_mut().enumerate() {
            let s = Instant::now();
            std::hint::black_box((r.4)()?);
            times[i].push(s.elapsed().as_secs_f64() * 1e3);
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
        .map(|((((name, engine, f, p, _), t), &m), &n)| Row {
            variant: name.clone(),
            engine,
            median_ms: m,
            min_ms: t.iter().copied().fold(f64::INFINITY, f64::min),
            max_ms: t.iter().copied().fold(0.0, f64::max),
            gflops: *f,
            params: *p,
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
                    format!("{:.2}", x.params as f64 / 1e6),
                    format!("{:.0}", x.median_ms),
                    format!("{:.0}–{:.0}", x.min_ms, x.max_ms),
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
        ) + &table(&["Variant", "Engine", "GFLOPs", "M params", "ms", "range", "/ORT dense", "/tract dense"], &body)
            + "GFLOPs: convs and linears at this canvas, 1000 box RoIs, 100 mask/keypoint RoIs\n"
    });
    Ok(())
}
