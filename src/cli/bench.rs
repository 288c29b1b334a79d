//! `ticket bench`: speed goals measured against baselines in the same run, printed as ratios.
use super::emit;
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::prune::select;
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
        /// Python with torch (tools/setup.sh torch makes .venv-torch); "none" skips the torch baseline.
        #[arg(long, default_value = ".venv-torch/bin/python")]
        torch_python: String,
        /// Folder of the tools/ scripts.
        #[arg(long, default_value = "tools")]
        tools: PathBuf,
    },
}

fn median_ms(repeat: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..repeat.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
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

pub fn run(cmd: BenchCommand, json: bool) -> Result<()> {
    let BenchCommand::Prune { model, sparsity, repeat, torch_python, tools } = cmd;
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
    let torch = if torch_python == "none" {
        None
    } else {
        let script = tools.join("bench_prune_torch.py");
        let out = std::process::Command::new(&torch_python)
            .arg(&script)
            .args(["--model".as_ref(), model.as_os_str()])
            .args(["--sparsity", &sparsity.to_string(), "--repeat", &repeat.to_string(), "--json"])
            .output()
            .map_err(|e| Error::Runtime(format!("{torch_python}: cannot run the torch baseline ({e}); run `tools/setup.sh torch` or pass --torch-python none")))?;
        if !out.status.success() {
            return Err(Error::Runtime(format!("{}: torch baseline failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""))));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Runtime(format!("{}: unreadable output ({e})", script.display())))?;
        Some(v)
    };
    let torch_ms = torch.as_ref().and_then(|t| t["torch_global_unstructured_ms"].as_f64());
    let r = PruneBench {
        model,
        weights: n,
        tensors: weights.len(),
        threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
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
