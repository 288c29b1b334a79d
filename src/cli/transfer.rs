//! `ticket transfer`: a detector whose backbone body is a classifier's — pretrained backbone, transfer ticket
//! or mask transfer, by what is given (`lottery::transfer`).
use super::print_report;
use crate::error::Result;
use crate::lottery::transfer::{transfer_files, NormSettings, DEFAULT_NORM_IMAGES};
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
    /// A classification set (the classifier's training crops, `ticket data synth --classify`): every
    /// FrozenBatchNorm of the body gets its statistics estimated on these crops, norm by norm, instead of the
    /// classifier's (which its training leaves at their initial values).
    #[arg(long)]
    pub norm_stats: Option<PathBuf>,
    /// How many of those crops (the first ones, whole batches of 16).
    #[arg(long, requires = "norm_stats", default_value_t = DEFAULT_NORM_IMAGES)]
    pub norm_images: usize,
}

impl Args {
    fn norm_settings(&self) -> Option<NormSettings> {
        self.norm_stats.as_ref().map(|d| NormSettings { data: d.clone(), images: self.norm_images })
    }
}

pub fn run(a: Args, json: bool) -> Result<()> {
    let report =
        transfer_files(&a.classifier, &a.detector, a.masks.as_deref(), &a.output, a.masks_out.as_deref(), a.norm_settings().as_ref())?;
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
        if let Some(n) = &r.norm_stats {
            s += &format!(
                "normalisation: {} norms estimated on {} crops of {} ({} px); the largest change of a norm's scale: {:.2}x\n",
                n.norms,
                n.images,
                n.data.display(),
                n.side,
                n.max_scale_change
            );
        }
        s
    });
    Ok(())
}
