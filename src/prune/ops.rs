//! Mask algebra: statistics, the IoU of two masks (the early-bird ticket test), and moving a classifier's
//! backbone mask onto a detector (the seed's ImageNet-ticket transfer).
use crate::error::{Error, Result};
use crate::model::{Masks, ModelState};
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct MaskStat {
    pub name: String,
    pub numel: usize,
    pub kept: usize,
    pub sparsity: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MaskStats {
    pub tensors: Vec<MaskStat>,
    pub numel: usize,
    pub kept: usize,
    pub sparsity: f64,
}

pub fn stats(masks: &Masks) -> MaskStats {
    let tensors: Vec<MaskStat> = masks
        .map
        .iter()
        .map(|(name, m)| MaskStat { name: name.clone(), numel: m.len(), kept: m.kept(), sparsity: sparsity(m.kept(), m.len()) })
        .collect();
    let (numel, kept) = (masks.total(), masks.kept());
    MaskStats { tensors, numel, kept, sparsity: sparsity(kept, numel) }
}

fn sparsity(kept: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        1.0 - kept as f64 / n as f64
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TensorIou {
    pub name: String,
    pub iou: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct IouReport {
    /// |A ∩ B| / |A ∪ B| over the kept weights of all tensors present in both.
    pub iou: f64,
    pub intersection: usize,
    pub union: usize,
    pub tensors: Vec<TensorIou>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
}

pub fn iou(a: &Masks, a_path: &Path, b: &Masks, b_path: &Path) -> Result<IouReport> {
    let (mut inter, mut union) = (0usize, 0usize);
    let mut tensors = Vec::new();
    for (name, ma) in &a.map {
        let Some(mb) = b.map.get(name) else { continue };
        if ma.shape != mb.shape {
            return Err(Error::input(
                b_path,
                format!("mask '{name}' has shape {:?} here but {:?} in {}", mb.shape, ma.shape, a_path.display()),
            ));
        }
        let i = ma.keep.iter().zip(&mb.keep).filter(|(x, y)| **x == 1 && **y == 1).count();
        let u = ma.keep.iter().zip(&mb.keep).filter(|(x, y)| **x == 1 || **y == 1).count();
        inter += i;
        union += u;
        tensors.push(TensorIou { name: name.clone(), iou: if u == 0 { 1.0 } else { i as f64 / u as f64 } });
    }
    if tensors.is_empty() {
        return Err(Error::input(b_path, format!("no mask name in common with {}", a_path.display())));
    }
    let only = |x: &Masks, y: &Masks| x.map.keys().filter(|k| !y.map.contains_key(*k)).cloned().collect::<Vec<_>>();
    Ok(IouReport {
        iou: if union == 0 { 1.0 } else { inter as f64 / union as f64 },
        intersection: inter,
        union,
        tensors,
        only_in_a: only(a, b),
        only_in_b: only(b, a),
    })
}

/// Normalised Hamming distance of two masks: the fraction of positions (over the tensors both have) where
/// one keeps and the other prunes. Early-bird's distance between consecutive masks (You et al., 2020).
pub fn hamming(a: &Masks, b: &Masks) -> f64 {
    let (mut differ, mut total) = (0usize, 0usize);
    for (name, ma) in &a.map {
        if let Some(mb) = b.map.get(name).filter(|mb| mb.keep.len() == ma.keep.len()) {
            differ += ma.keep.iter().zip(&mb.keep).filter(|(x, y)| x != y).count();
            total += ma.keep.len();
        }
    }
    if total == 0 {
        1.0
    } else {
        differ as f64 / total as f64
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TransferReport {
    pub transferred: Vec<String>,
    /// Source masks with no counterpart in the detector (the classifier's fc, for one).
    pub unused: Vec<String>,
}

/// Maps a mask onto a detector by parameter name; shapes must agree exactly. A torchvision classifier's mask goes
/// to the detector's backbone (`layer1.0.conv1.weight` → `backbone.body.layer1.0.conv1.weight`); another
/// detector's mask (task transfer, the seed's App. B: Mask R-CNN ↔ Keypoint R-CNN) moves by its own names for
/// everything up to the box head — backbone, FPN, RPN, box head — while the predictors and the mask and keypoint
/// heads stay with their task.
pub fn transfer(src: &Masks, src_path: &Path, detector: &ModelState) -> Result<(Masks, TransferReport)> {
    use crate::model::ModuleGroup;
    if !detector.arch.kind.is_detector() {
        return Err(Error::input(detector.path(), "mask transfer needs a torchvision detector as the target"));
    }
    let mut out = Masks::default();
    let mut report = TransferReport { transferred: vec![], unused: vec![] };
    for (name, m) in &src.map {
        let target = match ModuleGroup::of_detector_param(name) {
            Some(ModuleGroup::Base | ModuleGroup::Top | ModuleGroup::Fpn | ModuleGroup::Rpn | ModuleGroup::BoxHead) => name.clone(),
            Some(_) => {
                report.unused.push(name.clone());
                continue;
            }
            None => format!("backbone.body.{name}"),
        };
        match detector.weights.get(&target) {
            Some(w) if w.shape == m.shape => {
                out.map.insert(target.clone(), m.clone());
                report.transferred.push(target);
            }
            Some(w) => {
                return Err(Error::input(
                    src_path,
                    format!("mask '{name}' has shape {:?} but detector parameter '{target}' has {:?}", m.shape, w.shape),
                ));
            }
            None => report.unused.push(name.clone()),
        }
    }
    if out.map.is_empty() {
        return Err(Error::input(
            src_path,
            format!("no mask matches a backbone (or, from a detector, an FPN, RPN or box-head) parameter of {}", detector.path().display()),
        ));
    }
    Ok((out, report))
}
