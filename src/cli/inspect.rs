//! `ticket inspect`: what the model is, and where its weights are.
use super::{print_report, render_pct, render_table};
use crate::error::Result;
use crate::model::inspect::{report, InspectReport};
use crate::model::ModelState;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An ONNX model (or a compact ticket file).
    pub model: PathBuf,
    /// Also list every parameter tensor.
    #[arg(long)]
    pub layers: bool,
}

fn render(r: &InspectReport) -> String {
    let mut out = format!("{}\n{}\n\n", r.model.display(), r.summary);
    let mut rows: Vec<Vec<String>> = r
        .groups
        .iter()
        .map(|g| vec![g.label.clone(), g.params.to_string(), render_pct(g.share), g.prunable.to_string(), render_pct(g.sparsity)])
        .collect();
    rows.push(vec!["Total".into(), r.params.to_string(), render_pct(1.0), r.prunable.to_string(), render_pct(r.sparsity)]);
    out += &render_table(&["Module", "Params", "Share", "Prunable", "Sparsity"], &rows);
    out += &format!("network sparsity (exact zeros over all parameters): {}\n", render_pct(r.network_sparsity));
    if r.constants.tensors > 0 {
        out +=
            &format!("exporter constants and buffers (not parameters): {} tensors, {} values\n", r.constants.tensors, r.constants.values);
    }
    if !r.recovered_names.is_empty() {
        out += &format!(
            "{} parameter names were made by the exporter (constant folding) and recovered from node scopes; their values may be folded (e.g. Conv+BatchNorm):\n",
            r.recovered_names.len()
        );
        for n in r.recovered_names.iter().take(8) {
            out += &format!("  {n}\n");
        }
        if r.recovered_names.len() > 8 {
            out += &format!("  ... and {} more (see --json)\n", r.recovered_names.len() - 8);
        }
    }
    if let Some(layers) = &r.layers {
        out += "\n";
        let rows: Vec<Vec<String>> = layers
            .iter()
            .map(|l| {
                vec![
                    l.name.clone(),
                    l.group.key(),
                    format!("{:?}", l.role).to_lowercase(),
                    l.op.clone().unwrap_or_default(),
                    format!("{:?}", l.shape),
                    l.numel.to_string(),
                    render_pct(l.zeros as f64 / l.numel.max(1) as f64),
                ]
            })
            .collect();
        out += &render_table(&["Parameter", "Group", "Role", "Op", "Shape", "Numel", "Zeros"], &rows);
    }
    out
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let state = ModelState::import(&args.model)?;
    print_report(json, &report(&state, args.layers), render);
    Ok(())
}
