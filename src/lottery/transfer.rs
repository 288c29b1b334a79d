//! A classifier's body onto a detector's backbone: the paper's pretrained-backbone setting and its transfers.
//!
//! The detector keeps everything but `backbone.body`: its conv weights become the classifier's
//! (`layer1.0.conv1.weight` → `backbone.body.layer1.0.conv1.weight`), and its FrozenBatchNorm constants the
//! classifier's BatchNorm folded the same way (`model::batchnorm`), as torchvision builds a detector on an
//! ImageNet backbone. With a classifier mask, the detector gets that mask on its body (`prune::ops::transfer`)
//! and the masked weights are zero. Which setting this is depends only on what is given:
//! - pretrained backbone: the dense pretrained classifier, no mask;
//! - transfer ticket (seed §4.2): the classifier ticket's trained pruned weights and its mask;
//! - mask transfer (App. A): the dense pretrained classifier and a ticket's mask.
use crate::error::{Error, Result};
use crate::model::{ModelKind, ModelState, Role};
use crate::prune::ops::{self, TransferReport};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

const BODY: &str = "backbone.body.";

#[derive(Clone, Debug, Serialize)]
pub struct BackboneTransfer {
    /// Conv weights of the body replaced.
    pub weights: usize,
    /// FrozenBatchNorm scale/shift tensors replaced.
    pub norms: usize,
    /// Parameters (values) that came from the classifier.
    pub values: usize,
    /// The mask transfer, when a mask was given.
    pub masks: Option<TransferReport>,
    /// Weights of the body the mask sets to zero.
    pub pruned: usize,
}

/// The detector with `classifier`'s body (and, given, the classifier mask `masks` from `masks_path` applied);
/// its `masks` are the transferred ones. Names or shapes that do not match are an input error naming both.
pub fn transfer_backbone(
    classifier: &ModelState,
    detector: &ModelState,
    masks: Option<(&crate::model::Masks, &Path)>,
) -> Result<(ModelState, BackboneTransfer)> {
    if classifier.arch.kind != ModelKind::Classifier {
        return Err(Error::input(
            classifier.path(),
            format!("is a {}, not a ResNet classifier: there is no body to transfer", classifier.arch.kind.label()),
        ));
    }
    if !detector.arch.kind.is_detector() || detector.arch.backbone.is_none() {
        return Err(Error::input(detector.path(), format!("is a {}, not a detector with a ResNet backbone", detector.arch.summary())));
    }
    let mismatch = |what: String| {
        Err(Error::input(classifier.path(), format!("{what}: its body does not match the backbone of {}", detector.path().display())))
    };
    let mut edits: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    let mut values = 0;
    // Every conv weight of the body, both ways: a classifier with fewer blocks or other widths is refused.
    for w in classifier.weights.tensors.iter().filter(|w| w.role == Role::Weight && !w.name.starts_with("fc.")) {
        let target = format!("{BODY}{}", w.name);
        match detector.weights.get(&target) {
            Some(d) if d.shape == w.shape => {
                edits.insert(target, (d.shape.clone(), w.values.dense().into_owned()));
                values += w.values.len();
            }
            Some(d) => return mismatch(format!("'{}' has shape {:?}, the detector's '{target}' {:?}", w.name, w.shape, d.shape)),
            None => return mismatch(format!("'{}' has no counterpart '{target}'", w.name)),
        }
    }
    if let Some(d) =
        detector.weights.tensors.iter().find(|d| d.role == Role::Weight && d.name.starts_with(BODY) && !edits.contains_key(&d.name))
    {
        return mismatch(format!("it lacks '{}', which the detector has", d.name.trim_start_matches(BODY)));
    }
    let weights = edits.len();
    for (name, (_, v)) in &classifier.buffers {
        let target = format!("{BODY}{name}");
        match detector.buffers.get(&target) {
            Some((shape, d)) if d.len() == v.len() => {
                edits.insert(target, (shape.clone(), v.clone()));
                values += v.len();
            }
            Some((_, d)) => return mismatch(format!("BatchNorm '{name}' has {} channels, the detector's {}", v.len(), d.len())),
            None => return mismatch(format!("BatchNorm '{name}' has no FrozenBatchNorm '{target}'")),
        }
    }
    if let Some(b) = detector.buffers.keys().find(|b| b.starts_with(BODY) && !edits.contains_key(*b)) {
        return mismatch(format!("it lacks the BatchNorm of '{}'", b.trim_start_matches(BODY)));
    }
    let norms = edits.len() - weights;
    // Each replaced tensor must be its own initializer: one the exporter shared between layers would change
    // them all.
    let inits = crate::prune::channel::shrink::initializer_names(detector);
    let mut seen = HashSet::new();
    for t in edits.keys() {
        let init = inits.get(t).ok_or_else(|| Error::input(detector.path(), format!("cannot find the initializer holding '{t}'")))?;
        if !seen.insert(init) {
            return Err(Error::input(
                detector.path(),
                format!("initializer '{init}' holds more than one backbone tensor; it cannot take the classifier's values"),
            ));
        }
    }
    let mut out = crate::prune::channel::shrink::rewrite(detector, &edits, Default::default())?;
    let (report, pruned) = match masks {
        Some((m, path)) => {
            let (moved, report) = ops::transfer(m, path, &out)?;
            let pruned = moved.total() - moved.kept();
            out.apply_masks(moved, path)?;
            (Some(report), pruned)
        }
        None => (None, 0),
    };
    Ok((out, BackboneTransfer { weights, norms, values, masks: report, pruned }))
}

/// `ticket transfer`'s report: the detector written, its mask, the setting and what moved.
#[derive(Serialize)]
pub struct TransferFiles {
    pub output: PathBuf,
    pub masks_out: Option<PathBuf>,
    pub setting: &'static str,
    #[serde(flatten)]
    pub transfer: BackboneTransfer,
    pub sizes: crate::export::Sizes,
}

/// The classifier's body (and its mask, when `masks` is given) onto the detector, written to `output` (and the
/// detector's mask to `masks_out`) through `export`'s one path.
pub fn transfer_files(
    classifier: &Path,
    detector: &Path,
    masks: Option<&Path>,
    output: &Path,
    masks_out: Option<&Path>,
) -> Result<TransferFiles> {
    let cls = ModelState::import(classifier)?;
    let det = ModelState::import(detector)?;
    let loaded = masks.map(|m| crate::model::Masks::load(m).map(|l| (l, m))).transpose()?;
    let (state, transfer) = transfer_backbone(&cls, &det, loaded.as_ref().map(|(m, p)| (m, *p)))?;
    let mut inputs = vec![classifier, detector];
    inputs.extend(masks);
    let outputs = crate::export::Outputs { model: output, masks: masks_out, compact: None };
    let sizes = crate::export::export(&state, outputs, &inputs, crate::export::Verify::No)?.sizes;
    // Whether the weights were a ticket's or the dense model's is the user's to say; with a mask, "ticket or
    // mask transfer" names both.
    let setting = if masks.is_some() { "ticket or mask transfer (classifier mask on the body)" } else { "pretrained backbone" };
    Ok(TransferFiles { output: output.to_path_buf(), masks_out: masks_out.map(Path::to_path_buf), setting, transfer, sizes })
}
