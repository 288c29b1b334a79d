//! `ticket transfer`: a detector whose backbone body is a classifier's — pretrained backbone, transfer ticket
//! or mask transfer, by what is given (`lottery::transfer`).
use super::emit;
use crate::error::Result;
use crate::lottery::transfer::{transfer_backbone, BackboneTransfer};
use crate::model::{Masks, ModelState};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The classifier whose body the detector takes (a torchvision ResNet classifier, as ONNX).
    pub classifier: PathBuf,
    /// The detector (Faster/Mask/Keypoint R-CNN with a ResNet-FPN backbone of the same blocks and widths).
    pub detector: PathBuf,
    /// The detector with the classifier's body (weights and FrozenBatchNorm); nothing else changes.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// The classifier's mask (safetensors, classifier names): moved onto the body, masked weights set to zero.
    #[arg(long, requires = "masks_out")]
    pub masks: Option<PathBuf>,
    /// Where the detector's mask goes (detector names), for `imp --masks-from` or `train --masks`.
    #[arg(long, requires = "masks")]
    pub masks_out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    output: PathBuf,
    masks_out: Option<PathBuf>,
    setting: &'static str,
    #[serde(flatten)]
    transfer: BackboneTransfer,
    sizes: crate::export::Sizes,
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let classifier = ModelState::import(&a.classifier)?;
    let detector = ModelState::import(&a.detector)?;
    let masks = a.masks.as_ref().map(|m| Masks::load(m).map(|l| (l, m.clone()))).transpose()?;
    let (state, transfer) = transfer_backbone(&classifier, &detector, masks.as_ref().map(|(m, p)| (m, p.as_path())))?;
    let mut inputs = vec![a.classifier.as_path(), a.detector.as_path()];
    inputs.extend(a.masks.as_deref());
    let sizes = crate::export::write_outputs(&state, &a.output, a.masks_out.as_deref(), None, &inputs)?;
    // Whether the weights were a ticket's or the dense model's is the user's to say; with a mask, "ticket or
    // mask transfer" names both.
    let setting = if a.masks.is_some() { "ticket or mask transfer (classifier mask on the body)" } else { "pretrained backbone" };
    let report = Report { output: a.output.clone(), masks_out: a.masks_out.clone(), setting, transfer, sizes };
    emit(json, &report, |r| {
        let mut s = format!(
            "{}: backbone body from {} ({} conv weights, {} FrozenBatchNorm tensors, {} values); {}\n",
            r.output.display(),
            a.classifier.display(),
            r.transfer.weights,
            r.transfer.norms,
            r.transfer.values,
            r.setting
        );
        if let (Some(m), Some(t)) = (&r.masks_out, &r.transfer.masks) {
            s += &format!(
                "{}: {} backbone masks, {} weights pruned; classifier masks unused: {}\n",
                m.display(),
                t.transferred.len(),
                r.transfer.pruned,
                t.unused.join(", ")
            );
        }
        s
    });
    Ok(())
}
