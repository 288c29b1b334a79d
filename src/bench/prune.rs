//! The global magnitude mask over a model's prunable weights against `torch.nn.utils.prune.global_unstructured`
//! on the same weights (tools/bench_prune_torch.py) and against one plain copy of the weights.
use super::{median_ms, torch_baseline, Progress};
use crate::error::Result;
use crate::model::ModelState;
use crate::prune::select;
use serde::Serialize;
use std::path::PathBuf;

pub struct Settings {
    pub model: PathBuf,
    pub sparsity: f64,
    pub repeat: usize,
    /// Python with torch ("none" skips the baseline; None: `runtime::env`'s).
    pub torch_python: Option<String>,
    /// Folder of the tools/ scripts (None: `runtime::env`'s).
    pub tools: Option<PathBuf>,
}

#[derive(Serialize)]
pub struct PruneBench {
    pub model: PathBuf,
    pub weights: usize,
    pub tensors: usize,
    pub threads: usize,
    pub ticket_global_mask_ms: f64,
    pub ticket_copy_ms: f64,
    pub torch: Option<serde_json::Value>,
    /// torch global_unstructured time / ticket's (goal ≥ 5).
    pub speedup_vs_torch: Option<f64>,
    /// ticket's mask time / one plain copy of the weights (goal ≤ 2).
    pub mask_over_copy: f64,
}

impl PruneBench {
    /// torch's time, when the baseline ran.
    pub fn torch_ms(&self) -> Option<f64> {
        self.torch.as_ref().and_then(|t| t["torch_global_unstructured_ms"].as_f64())
    }
}

pub fn run(s: Settings, progress: &mut dyn FnMut(Progress)) -> Result<PruneBench> {
    let state = ModelState::import(&s.model)?;
    let dense: Vec<std::borrow::Cow<[f32]>> = state.prunable().map(|w| w.values.dense()).collect();
    let weights: Vec<&[f32]> = dense.iter().map(|w| &w[..]).collect();
    let n: usize = weights.iter().map(|w| w.len()).sum();
    let k = ((n as f64) * (1.0 - s.sparsity)).round() as usize;
    progress(Progress::Total(2));
    let inputs: Vec<select::Input> = weights.iter().map(|v| select::Input { values: v, prev: None }).collect();
    let mask_ms = median_ms(s.repeat, || {
        std::hint::black_box(select::keep_top_k(&inputs, k));
    });
    progress(Progress::Step);
    let copy_ms = median_ms(s.repeat, || {
        let c: Vec<Vec<f32>> = weights.iter().map(|w| w.to_vec()).collect();
        std::hint::black_box(c);
    });
    progress(Progress::Step);
    progress(Progress::Done);
    let torch = torch_baseline(
        s.torch_python.as_deref(),
        s.tools.as_deref(),
        "bench_prune_torch.py",
        &[
            "--model".into(),
            s.model.clone().into_os_string(),
            "--sparsity".into(),
            s.sparsity.to_string().into(),
            "--repeat".into(),
            s.repeat.to_string().into(),
        ],
    )?;
    let mut r = PruneBench {
        model: s.model,
        weights: n,
        tensors: weights.len(),
        threads: crate::runtime::threads::cores(),
        ticket_global_mask_ms: mask_ms,
        ticket_copy_ms: copy_ms,
        speedup_vs_torch: None,
        torch,
        mask_over_copy: mask_ms / copy_ms,
    };
    r.speedup_vs_torch = r.torch_ms().map(|t| t / mask_ms);
    Ok(r)
}
