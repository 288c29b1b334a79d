//! `ticket bench detect`: end-to-end detection latency on one image at one thread count, dense in ONNX Runtime
//! and tract, channel and weight tickets in tract (`crate::bench::detect`).
use super::{print_report, render_table};
use crate::bench::detect::{DetectBench, Settings};
use crate::error::Result;
use crate::prune::Scope;
use std::path::PathBuf;

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
    #[arg(long, value_parser = super::choice::parse_choice::<Scope>(), default_value_t = Scope::Layer)]
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

impl Args {
    fn settings(self) -> Settings {
        Settings {
            model: self.model,
            tickets: self.tickets,
            sparsities: self.sparsities,
            round_to: self.round_to,
            weight_sparsities: self.weight_sparsities,
            scope: self.scope,
            floor: self.floor,
            kernels: self.kernels,
            size: self.size,
            threads: self.threads,
            repeat: self.repeat,
        }
    }
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let report = crate::bench::detect::run(args.settings(), &mut crate::cli::progress_bar(0, "bench", json))?;
    print_report(json, &report, render);
    Ok(())
}

fn render(r: &DetectBench) -> String {
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
    ) + &render_table(
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
}
