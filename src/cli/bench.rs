//! `ticket bench`: speed goals measured against baselines in the same run (the harness is `crate::bench`),
//! printed as ratios.
use super::{print_report, render_pct, render_table};
use crate::bench;
use crate::bench::prune::PruneBench;
use crate::bench::stages::StagesBench;
use crate::error::Result;
use std::path::PathBuf;

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

impl BenchCommand {
    /// tract's threads for the benchmarks that run tract (0: one per core), set process-wide by
    /// `cli::run`; None for those that do not.
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
            let s = bench::prune::Settings { model, sparsity, repeat, torch_python, tools };
            let r = bench::prune::run(s, &mut crate::cli::progress_bar(0, "bench", json))?;
            print_report(json, &r, |r| render_prune(r, repeat));
            Ok(())
        }
        BenchCommand::Stages { model, sparsity, repeat, size, rois, head_rois, threads } => {
            let threads = crate::runtime::threads::resolve(threads);
            let s = bench::stages::Settings { model, sparsity, repeat, size, rois, head_rois, threads };
            let r = bench::stages::run(s, &mut crate::cli::progress_bar(0, "stages", json))?;
            print_report(json, &r, render_stages);
            Ok(())
        }
        BenchCommand::Train(args) => super::bench_train::run(args, json),
        BenchCommand::Detect(args) => super::bench_detect::run(args, json),
        BenchCommand::Sparse(args) => super::bench_sparse::run(args, json),
    }
}

fn render_prune(r: &PruneBench, repeat: usize) -> String {
    let mut s = format!(
        "{}: {} prunable weights in {} tensors, {} threads\nticket global mask: {:.1} ms (median of {repeat})\none plain copy:      {:.1} ms  → mask/copy = {:.2} (goal ≤ 2)\n",
        r.model.display(), r.weights, r.tensors, r.threads, r.ticket_global_mask_ms, r.ticket_copy_ms, r.mask_over_copy
    );
    if let (Some(t), Some(x)) = (r.torch_ms(), r.speedup_vs_torch) {
        s += &format!("torch global_unstructured: {t:.1} ms → ticket is {x:.1}× faster (goal ≥ 5)\n");
    }
    s
}

fn render_stages(r: &StagesBench) -> String {
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
        render_pct(r.target_sparsity),
        render_pct(r.network_sparsity),
        r.tract_threads,
        r.ort_threads
    ) + &render_table(&["Stage [input]", "Engine", "Dense ms", "Pruned ms", "Pruned/dense", "tract/ORT"], &body)
        + "tract/ORT compares the dense times; plan building and session creation are not timed (see --json)\n"
}
