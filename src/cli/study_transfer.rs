//! `ticket study transfer`'s own arguments: the classifier, its sets and its schedule
//! (`lottery::sweep::transfer` prepares the study from them).
use crate::lottery::sweep::transfer::{TransferInputs, DEFAULT_CLS_BATCH, DEFAULT_CLS_STEPS, DEFAULT_CLS_TICKET_STEPS};
use std::path::PathBuf;

/// What the transfer study needs beyond every study's inputs.
#[derive(clap::Args, Debug)]
pub struct TransferArgs {
    /// transfer: the ResNet classifier to pretrain (same blocks and widths as the detector's body;
    /// tools/export_models.py --synth W writes one).
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// transfer: its training set (`ticket data synth --classify`).
    #[arg(long)]
    pub classify: Option<PathBuf>,
    /// transfer: its held-out set, for the classifier ticket's top-1.
    #[arg(long)]
    pub val_classify: Option<PathBuf>,
    /// transfer: classifier pretraining steps (batch 32, AdamW, lr 0.001).
    #[arg(long, default_value_t = DEFAULT_CLS_STEPS)]
    pub cls_steps: u64,
    /// transfer: fine-tuning steps of the classifier ticket.
    #[arg(long, default_value_t = DEFAULT_CLS_TICKET_STEPS)]
    pub cls_ticket_steps: u64,
    /// transfer: the classifier's batch.
    #[arg(long, default_value_t = DEFAULT_CLS_BATCH)]
    pub cls_batch: usize,
    /// transfer: give every detector's body FrozenBatchNorm statistics estimated on the --classify crops
    /// (`ticket transfer --norm-stats`), instead of the classifier's initial ones.
    #[arg(long)]
    pub norm_stats: bool,
}

impl TransferArgs {
    /// The study's settings from the flags.
    pub fn inputs(&self) -> TransferInputs {
        TransferInputs {
            classifier: self.classifier.clone(),
            classify: self.classify.clone(),
            val_classify: self.val_classify.clone(),
            cls_steps: self.cls_steps,
            cls_ticket_steps: self.cls_ticket_steps,
            cls_batch: self.cls_batch,
            norm_stats: self.norm_stats,
        }
    }
}
