//! `ticket prune`: magnitude masks, exported as the user's graph with pruned initializers set to zero; or, with
//! `--structure channel`, a channel ticket: the user's graph with whole channels removed from its initializers.
use super::{print_report, render_pct, render_table};
use crate::error::Result;
use crate::lottery::oneshot::{prune_channels, prune_weights, ChannelOutput, PruneFiles, PruneOutput};
use crate::prune::channel::{ChannelParams, Importance};
use crate::prune::{PruneParams, PruneReport, Scope, Structure};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The dense (or already pruned) model: ONNX or a compact ticket file.
    pub model: PathBuf,
    /// Target sparsity of the selected weights after the last round, in [0, 1); with `--structure channel`
    /// the fraction of the selected channels removed.
    #[arg(long)]
    pub sparsity: f64,
    #[command(flatten)]
    pub what: StructureArgs,
    #[arg(long, value_parser = super::choice::parse_choice::<Scope>(), default_value_t = Scope::Global)]
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

/// What is removed, and how channels are ranked: the same options for `ticket prune` and `ticket imp`.
#[derive(clap::Args, Debug)]
pub struct StructureArgs {
    /// weight: unstructured magnitude masks (same shapes, zeros); channel: remove whole channels in coupled
    /// groups (a smaller, faster model).
    #[arg(long, value_parser = super::choice::parse_choice::<Structure>(), default_value_t = Structure::Weight)]
    pub structure: Structure,
    /// Channel importance (--structure channel): group L1 or L2 norm, or FrozenBatchNorm's effective scale.
    #[arg(long, value_parser = super::choice::parse_choice::<Importance>(), default_value_t = Importance::L1)]
    pub importance: Importance,
    /// Kept channel counts are rounded up to multiples of N (--structure channel), for SIMD-friendly widths.
    #[arg(long, default_value_t = 8)]
    pub round_to: usize,
}

impl Args {
    /// The files read and written, and whether the export is checked.
    pub fn files(&self) -> PruneFiles {
        PruneFiles {
            model: self.model.clone(),
            masks: self.masks.clone(),
            output: self.output.clone(),
            masks_out: self.masks_out.clone(),
            compact: self.compact.clone(),
            verify: self.verify,
        }
    }

    /// The weight-pruning settings as given.
    pub fn params(&self) -> PruneParams {
        PruneParams {
            sparsity: self.sparsity,
            scope: self.scope,
            modules: self.modules.clone(),
            rounds: self.rounds,
            round: self.round,
            include_bias: self.include_bias,
            min_layer_density: self.min_layer_density,
        }
    }

    /// The channel-pruning settings as given.
    pub fn channel_params(&self) -> ChannelParams {
        ChannelParams {
            sparsity: self.sparsity,
            scope: self.scope,
            modules: self.modules.clone(),
            importance: self.what.importance,
            round_to: self.what.round_to,
            ..Default::default()
        }
    }
}

fn render(r: &PruneOutput) -> String {
    let p = &r.prune;
    let mut out = format!(
        "{} → {}\n{:?} magnitude pruning, round {}/{}: target {} of the selected weights\n",
        r.model.display(),
        r.output.display(),
        p.scope,
        p.round,
        p.rounds,
        render_pct(p.target_sparsity)
    );
    let mut groups: std::collections::BTreeMap<_, (usize, usize)> = Default::default();
    for t in &p.tensors {
        let e = groups.entry(t.group.clone()).or_default();
        e.0 += t.numel;
        e.1 += t.kept;
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|(g, (n, k))| vec![g.label(), n.to_string(), k.to_string(), render_pct(1.0 - *k as f64 / (*n).max(1) as f64)])
        .collect();
    out += &render_table(&["Module", "Selected", "Kept", "Sparsity"], &rows);
    out += &format!(
        "selected sparsity {} ({} of {} kept); network sparsity {} ({} of {} parameters pruned)\n",
        render_pct(p.selected_sparsity),
        p.selected_kept,
        p.selected_weights,
        render_pct(p.network_sparsity),
        p.network_pruned,
        p.network_weights
    );
    out += &render_collapse_warning(p);
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
fn render_collapse_warning(p: &PruneReport) -> String {
    p.collapsed
        .iter()
        .map(|(name, s)| {
            format!("warning: {name} is {} pruned: the layer has all but collapsed (--min-layer-density F keeps a floor)\n", render_pct(*s))
        })
        .collect()
}

pub fn run(args: Args, json: bool) -> Result<()> {
    if args.what.structure == Structure::Channel {
        let out = prune_channels(&args.files(), args.channel_params(), &args.params())?;
        print_report(json, &out, render_channel);
    } else {
        let out = prune_weights(&args.files(), args.params())?;
        print_report(json, &out, render);
    }
    Ok(())
}

fn render_channel(r: &ChannelOutput) -> String {
    let p = &r.prune;
    let mut out = format!(
        "{} → {}\n{:?} channel pruning ({:?} importance, widths rounded to multiples of {}): {} of {} channels kept in {} groups\n",
        r.model.display(),
        r.output.display(),
        p.scope,
        p.importance,
        p.round_to,
        p.channels_kept,
        p.channels,
        p.groups.len()
    );
    let rows: Vec<Vec<String>> = p
        .modules
        .iter()
        .map(|m| {
            vec![
                m.module.label(),
                m.params_before.to_string(),
                m.params_after.to_string(),
                format!("{:.3}", m.flops_before as f64 / 1e9),
                format!("{:.3}", m.flops_after as f64 / 1e9),
                render_pct(1.0 - m.flops_after as f64 / m.flops_before.max(1) as f64),
            ]
        })
        .collect();
    out += &render_table(&["Module", "Params", "Kept", "GFLOPs", "After", "FLOPs removed"], &rows);
    out += &format!(
        "parameters {} → {} ({} removed); GFLOPs {:.3} → {:.3} ({} removed) at {}×{}, {} box RoIs, {} mask/keypoint RoIs\n",
        p.params_before,
        p.params_after,
        render_pct(p.params_removed),
        p.flops_before as f64 / 1e9,
        p.flops_after as f64 / 1e9,
        render_pct(p.flops_removed),
        p.flops_at.height,
        p.flops_at.width,
        p.flops_at.box_rois,
        p.flops_at.head_rois
    );
    out += &format!("size: input {} bytes, output {} bytes\n", r.sizes.input_bytes, r.sizes.output_bytes);
    if let Some(v) = &r.verify {
        let worst = v.iter().map(|d| d.max_abs_diff).fold(0.0, f64::max);
        out += &format!(
            "ONNX Runtime: {} outputs equal to the input model with the removed channels zeroed (max abs diff {worst:e})\n",
            v.len()
        );
    }
    out
}
