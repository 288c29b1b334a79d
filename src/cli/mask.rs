//! `ticket mask`: statistics, IoU (early-bird tickets), apply, and classifier → detector transfer.
use super::{print_report, render_pct, render_table};
use crate::error::Result;
use crate::model::{Masks, ModelState};
use crate::prune::ops;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum MaskCommand {
    /// Kept weights and sparsity per tensor and overall.
    Stats {
        masks: PathBuf,
        /// List every tensor, not only the totals.
        #[arg(long)]
        layers: bool,
    },
    /// Intersection over union of the kept weights of two mask files.
    Iou { a: PathBuf, b: PathBuf },
    /// Apply a mask file to a model and export it.
    Apply {
        /// The ONNX model whose weights are masked (e.g. the initial weights, to rewind a ticket to them).
        model: PathBuf,
        /// The mask file (safetensors of 0/1 per weight, as `ticket prune --masks-out` writes); every tensor it
        /// names must exist in the model with the same shape.
        masks: PathBuf,
        /// The masked model (ONNX; masked weights are exactly +0.0).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Also write the compact ticket form.
        #[arg(long)]
        compact: Option<PathBuf>,
        /// Check the export in ONNX Runtime against the model with the masks applied in memory.
        #[arg(long)]
        verify: bool,
    },
    /// Move a classifier's mask onto a detector's backbone, or a detector's mask onto another detector up to the box head.
    Transfer {
        /// Masks of a ResNet classifier (`layer1.0.conv1.weight`, ...) for the detector's backbone, or of another
        /// detector (task transfer: backbone, FPN, RPN and box head move by name; predictors and task heads stay).
        masks: PathBuf,
        /// The detector whose backbone receives them.
        #[arg(long)]
        to: PathBuf,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

pub fn run(cmd: MaskCommand, json: bool) -> Result<()> {
    match cmd {
        MaskCommand::Stats { masks, layers } => {
            let s = ops::stats(&Masks::load(&masks)?);
            print_report(json, &s, |s| {
                let mut out = String::new();
                if layers {
                    let rows: Vec<Vec<String>> = s
                        .tensors
                        .iter()
                        .map(|t| vec![t.name.clone(), t.numel.to_string(), t.kept.to_string(), render_pct(t.sparsity)])
                        .collect();
                    out += &render_table(&["Tensor", "Numel", "Kept", "Sparsity"], &rows);
                }
                out + &format!("{} tensors, {} weights, {} kept, sparsity {}\n", s.tensors.len(), s.numel, s.kept, render_pct(s.sparsity))
            });
            Ok(())
        }
        MaskCommand::Iou { a, b } => {
            let r = ops::iou(&Masks::load(&a)?, &a, &Masks::load(&b)?, &b)?;
            print_report(json, &r, |r| {
                let mut out =
                    format!("IoU {:.4} ({} kept in both, {} in either) over {} tensors\n", r.iou, r.intersection, r.union, r.tensors.len());
                for (label, names) in [("only in the first", &r.only_in_a), ("only in the second", &r.only_in_b)] {
                    if !names.is_empty() {
                        out += &format!("{} tensors {label} (ignored)\n", names.len());
                    }
                }
                out
            });
            Ok(())
        }
        MaskCommand::Apply { model, masks, output, compact, verify } => {
            let out = crate::export::Outputs { model: &output, masks: None, compact: compact.as_deref() };
            let r = crate::export::apply_masks(&model, &masks, out, verify)?;
            print_report(json, &r, |r| {
                format!(
                    "{}: {} tensors masked, {} weights set to zero, {} bytes\n",
                    r.output.display(),
                    r.masked_tensors,
                    r.pruned,
                    r.sizes.output_bytes
                )
            });
            Ok(())
        }
        MaskCommand::Transfer { masks, to, output } => {
            crate::fsio::ensure_distinct(&output, &[&masks, &to])?;
            let src = Masks::load(&masks)?;
            let detector = ModelState::import(&to)?;
            let (out, report) = ops::transfer(&src, &masks, &detector)?;
            out.save(&output, &[("transferred_from", masks.display().to_string()), ("model", to.display().to_string())])?;
            print_report(json, &report, |r| {
                format!(
                    "{}: {} masks transferred, {} source masks unused ({})\n",
                    output.display(),
                    r.transferred.len(),
                    r.unused.len(),
                    r.unused.join(", ")
                )
            });
            Ok(())
        }
    }
}
