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
//!
//! A classifier trained here keeps its FrozenBatchNorm at its initial statistics (its training graph freezes
//! the normalisation, as the detectors' do), so after pretraining the body's norms no longer normalise what its
//! trained convolutions compute, and a detector built on it sees features of arbitrary scale. Given the
//! classification crops, [`estimate_norms`] re-estimates every norm's statistics on them, as BatchNorm's
//! running statistics would have been, and the transfer folds those into the detector's FrozenBatchNorm.
use crate::data::ClassifyDataset;
use crate::error::{Error, Result};
use crate::model::{ModelKind, ModelState, Role};
use crate::prune::ops::{self, TransferReport};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Where the normalisation statistics are estimated: the first `images` crops of a classification set (rounded
/// down to whole batches), at the classifier's side.
#[derive(Clone, Debug)]
pub struct NormSettings {
    /// A classification set's folder (`DIR/labels.json`, `DIR/images`).
    pub data: PathBuf,
    pub images: usize,
}

/// The statistics estimated, as `ticket transfer` reports them.
#[derive(Clone, Debug, Serialize)]
pub struct NormReport {
    pub data: PathBuf,
    pub images: usize,
    pub side: usize,
    /// Norms re-estimated (each one's scale and shift).
    pub norms: usize,
    /// Over the norms, the largest ratio between the standard deviation of what a norm's input was scaled to
    /// before and 1 (what it is scaled to after), either way: how far off the pretrained norms were.
    pub max_scale_change: f64,
}

/// Crops the statistics are estimated on by default: enough that each channel's mean and variance settle
/// (every crop gives hundreds of pixels per channel even in layer4), few enough to take seconds.
pub const DEFAULT_NORM_IMAGES: usize = 512;

/// The smallest variance a norm is given, as tools/export_models.py gives the initial running statistics: a
/// channel the crops barely move (one a classifier ticket's mask emptied, or a near-constant one on few crops)
/// would otherwise be scaled by up to 1/sqrt(ε) ≈ 316 and blow up on a detector's images.
pub const NORM_VAR_FLOOR: f32 = 1e-2;

/// Crops per tract run while estimating.
const NORM_BATCH: usize = 16;

/// The classifier's FrozenBatchNorm constants (`{module}.scale` / `.shift`) with each norm's statistics
/// estimated on `data`: the mean and (biased) variance (at least [`NORM_VAR_FLOOR`]) of the norm's input over every pixel of `images` crops,
/// norm by norm in forward order, each with the norms before it already re-estimated (so each sees the input
/// it will see), folded with the norm's own affine parameters (`γ / sqrt(var + ε)`, `β − mean · scale`).
pub fn estimate_norms(
    classifier: &ModelState,
    data: &ClassifyDataset,
    images: usize,
    side: usize,
) -> Result<(BTreeMap<String, (Vec<usize>, Vec<f32>)>, NormReport)> {
    let params = crate::model::batchnorm::batchnorms(&classifier.source)?;
    let batch = NORM_BATCH.min(images.min(data.len()).max(1));
    let n = images.min(data.len()) / batch * batch;
    if n == 0 {
        return Err(Error::setting("norm_images", "`norm_images` must be at least 1"));
    }
    let crops: Vec<ndarray::Array3<f32>> = (0..n).map(|i| data.sample(i, side).map(|(x, _)| x)).collect::<Result<_>>()?;
    let mut state = classifier.clone();
    let (_, order) = crate::graph::classify::norm_inputs_graph(&state, batch, side)?;
    let mut max_scale_change = 1.0f64;
    for (k, module) in order.iter().enumerate() {
        let bn = params.get(module).ok_or_else(|| {
            Error::input(classifier.path(), format!("norm '{module}' has no BatchNormalization parameters to fold statistics into"))
        })?;
        let (graph, _) = crate::graph::classify::norm_inputs_graph(&state, batch, side)?;
        let stage = crate::runtime::tract_stage::TractStage::new("classifier norms", &graph)?;
        let (mean, mut var) = channel_stats(&stage, &crops, batch, k)?;
        var.iter_mut().for_each(|v| *v = v.max(NORM_VAR_FLOOR));
        let old_scale = &state.buffers[&format!("{module}.scale")].1;
        for (s, v) in old_scale.iter().zip(&var) {
            let spread = (*s as f64 * (*v as f64).sqrt()).abs().max(1e-12);
            max_scale_change = max_scale_change.max(spread).max(1.0 / spread);
        }
        let (scale, shift) = bn.folded(&mean, &var);
        let c = scale.len();
        state.buffers.insert(format!("{module}.scale"), (vec![1, c, 1, 1], scale));
        state.buffers.insert(format!("{module}.shift"), (vec![1, c, 1, 1], shift));
    }
    let report = NormReport { data: data.source.clone(), images: n, side, norms: order.len(), max_scale_change };
    Ok((state.buffers, report))
}

/// Per-channel mean and biased variance of output `k` of `stage` over `crops`, in batches of `batch`.
fn channel_stats(
    stage: &crate::runtime::tract_stage::TractStage,
    crops: &[ndarray::Array3<f32>],
    batch: usize,
    k: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (mut sum, mut sq, mut count) = (Vec::<f64>::new(), Vec::<f64>::new(), 0usize);
    for chunk in crops.chunks(batch) {
        let views: Vec<_> = chunk.iter().map(|c| c.view()).collect();
        let x = ndarray::stack(ndarray::Axis(0), &views).expect("crops of one side").into_dyn();
        let out = stage.run(vec![x])?;
        let y = &out[k].1;
        let c = y.shape()[1];
        if sum.is_empty() {
            (sum, sq) = (vec![0.0; c], vec![0.0; c]);
        }
        for (ch, (s, q)) in sum.iter_mut().zip(sq.iter_mut()).enumerate() {
            for v in y.index_axis(ndarray::Axis(1), ch).iter() {
                *s += *v as f64;
                *q += *v as f64 * *v as f64;
            }
        }
        count += y.len() / c;
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
    let var = sq.iter().zip(&mean).map(|(q, m)| (q / count as f64 - m * m).max(0.0) as f32).collect();
    Ok((mean.into_iter().map(|m| m as f32).collect(), var))
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
    /// The normalisation statistics estimated on classification crops, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub norm_stats: Option<NormReport>,
}

/// The classifier's body (and its mask, when `masks` is given) onto the detector, written to `output` (and the
/// detector's mask to `masks_out`) through `export`'s one path.
pub fn transfer_files(
    classifier: &Path,
    detector: &Path,
    masks: Option<&Path>,
    output: &Path,
    masks_out: Option<&Path>,
    norms: Option<&NormSettings>,
) -> Result<TransferFiles> {
    let mut cls = ModelState::import(classifier)?;
    let det = ModelState::import(detector)?;
    let norm_stats = match norms {
        Some(n) => {
            let data = ClassifyDataset::load(&n.data)?;
            crate::data::check_classify_classes(&cls, &data)?;
            let side = data.side()?;
            let (buffers, report) = estimate_norms(&cls, &data, n.images, side)?;
            cls.buffers = buffers;
            Some(report)
        }
        None => None,
    };
    let loaded = masks.map(|m| crate::model::Masks::load(m).map(|l| (l, m))).transpose()?;
    let (state, transfer) = transfer_backbone(&cls, &det, loaded.as_ref().map(|(m, p)| (m, *p)))?;
    let mut inputs = vec![classifier, detector];
    inputs.extend(masks);
    let outputs = crate::export::Outputs { model: output, masks: masks_out, compact: None };
    let sizes = crate::export::export(&state, outputs, &inputs, crate::export::Verify::No)?.sizes;
    // Whether the weights were a ticket's or the dense model's is the user's to say; with a mask, "ticket or
    // mask transfer" names both.
    let setting = if masks.is_some() { "ticket or mask transfer (classifier mask on the body)" } else { "pretrained backbone" };
    Ok(TransferFiles { output: output.to_path_buf(), masks_out: masks_out.map(Path::to_path_buf), setting, transfer, sizes, norm_stats })
}
