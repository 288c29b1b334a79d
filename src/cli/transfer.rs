//! `ticket transfer`: a detector whose backbone body is a classifier's — pretrained backbone, transfer ticket
//! or mask transfer, by what is given (`lottery::transfer`).
use super::print_report;
use crate::error::Result;
use crate::lottery::transfer::transfer_files;
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

pub fn run(a: Args, json: bool) -> Result<()> {
    let report = transfer_files(&a.classifier, &a.detector, a.masks.as_deref(), &a.output, a.masks_out.as_deref())?;
    print_report(json, &report, |r| {
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
