//! `ticket prune`: magnitude masks, exported as the user's graph with pruned initializers set to zero.
use super::{emit, pct, table};
use crate::error::Result;
use crate::model::{Masks, ModelState};
use crate::prune::{PruneParams, PruneReport, Scope};
use crate::export::Sizes;
use crate::runtime::ort_check::OutputDiff;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The dense (or already pruned) model: ONNX or a compact ticket file.
    pub model: PathBuf,
    /// Target sparsity of the selected weights after the last round, in [0, 1).
    #[arg(long)]
    pub sparsity: f64,
    #[arg(long, value_enum, default_value_t = Scope::Global)]
    pub scope: Scope,
    /// Comma-separated module groups to prune (base, top, fpn, rpn, box_head, box_predictor, mask_head,
    /// keypoint_head, fc, or a generic model's name prefixes). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub modules: Option<Vec<String>>,
    /// Number of IMP rounds the schedule spreads the sparsity over.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Which round this is (1..=rounds): keeps (1-S)^(round/rounds) of the selected weights.
    #[arg(long, default_value_t = 1)]
    pub round: usize,
    /// Prune biases too (conv and linear), ranked with the weights.
    #[arg(long)]
    pub include_bias: bool,
    /// Keep at least this fraction of every selected tensor (global scope), so no layer collapses.
    #[arg(long)]
    pub min_layer_density: Option<f64>,
    /// Masks of an earlier round: weights they prune stay pruned.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Output ONNX model.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Also write the masks (safetensors, U8 0/1 per parameter).
    #[arg(long)]
    pub masks_out: Option<PathBuf>,
    /// Also write the compact ticket form (bitmap + kept values) for edge storage.
    #[arg(long)]
    pub compact: Option<PathBuf>,
    /// Run the export and the input model (with the masks applied in memory) in ONNX Runtime and compare.
    #[arg(long)]
    pub verify: bool,
}

#[derive(Serialize)]
pub struct PruneOutput {
    pub model: PathBuf,
    pub output: PathBuf,
    pub prune: PruneReport,
    pub sizes: Sizes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Vec<OutputDiff>>,
}

pub fn text(r: &PruneOutput) -> String {
    let p = &r.prune;
    let mut out = format!(
        "{} → {}\n{:?} magnitude pruning, round {}/{}: target {} of the selected weights\n",
        r.model.display(),
        r.output.display(),
        p.scope,
        p.round,
        p.rounds,
        pct(p.target_sparsity)
    );
    let mut groups: std::collections::BTreeMap<_, (usize, usize)> = Default::default();
    for t in &p.tensors {
        let e = groups.entry(t.group.clone()).or_default();
        e.0 += t.numel;
        e.1 += t.kept;
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|(g, (n, k))| vec![g.label(), n.to_string(), k.to_string(), pct(1.0 - *k as f64 / (*n).max(1) as f64)])
        .collect();
    out += &table(&["Module", "Selected", "Kept", "Sparsity"], &rows);
    out += &format!(
        "selected sparsity {} ({} of {} kept); network sparsity {} ({} of {} parameters pruned)\n",
        pct(p.selected_sparsity),
        p.selected_kept,
        p.selected_weights,
        pct(p.network_sparsity),
        p.network_pruned,
        p.network_weights
    );
    out += &collapse_warning(p);
    out += &format!("size: input {} bytes, output {} bytes", r.sizes.input_bytes, r.sizes.output_bytes);
    if let (Some(c), Some(ratio), Some(g)) = (r.sizes.compact_bytes, r.sizes.compact_ratio, r.sizes.compact_graph_bytes) {
        // Small models are mostly graph; the weights' own ratio is what scales to full-size models.
        let weights = (c.saturating_sub(g)) as f64 / (r.sizes.output_bytes.saturating_sub(g)).max(1) as f64;
        out += &format!(", compact {c} bytes ({ratio:.3} of the ONNX; the pruned weights alone {weights:.3})");
    }
    out += "\n";
    if let Some(v) = &r.verify {
        let worst = v.iter().map(|d| d.max_abs_diff).fold(0.0, f64::max);
        out += &format!("ONNX Runtime: {} outputs equal to the masked input model (max abs diff {worst:e})\n", v.len());
    }
    out
}

/// One warning line per tensor that pruning all but removed (none when nothing collapsed).
pub fn collapse_warning(p: &PruneReport) -> String {
    p.collapsed
        .iter()
        .map(|(name, s)| format!("warning: {name} is {} pruned: the layer has all but collapsed (--min-layer-density F keeps a floor)\n", pct(*s)))
        .collect()
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let params = PruneParams {
        sparsity: args.sparsity,
        scope: args.scope,
        modules: args.modules.clone(),
        rounds: args.rounds,
        round: args.round,
        include_bias: args.include_bias,
        min_layer_density: args.min_layer_density,
    }
    .check()?;
    let mut inputs: Vec<&Path> = vec![&args.model];
    inputs.extend(args.masks.as_deref());
    let mut state = ModelState::import(&args.model)?;
    let ext = state.source.external_files();
    inputs.extend(ext.iter().map(PathBuf::as_path));
    if let Some(m) = &args.masks {
        state.apply_masks(Masks::load(m)?, m)?;
    }
    let report = crate::prune::prune(&mut state, &params)?;
    let sizes = crate::export::write_outputs(&state, &args.output, args.masks_out.as_deref(), args.compact.as_deref(), &inputs)?;
    let verify = args.verify.then(|| crate::runtime::ort_check::verify_export(&state, &args.output)).transpose()?;
    emit(json, &PruneOutput { model: args.model, output: args.output, prune: report, sizes, verify }, text);
    Ok(())
}
