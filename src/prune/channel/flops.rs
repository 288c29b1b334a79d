//! FLOPs of a torchvision FPN detector, per module group, as `ticket detect` runs it: the backbone, FPN and RPN
//! head on one canvas, the box head on the RPN's post-NMS proposals, mask/keypoint heads on the kept detections.
//! A multiply-add counts as 2 FLOPs; element-wise ops, RoIAlign and post-processing are left out (they do not
//! change with channel pruning's share of the work).
use crate::model::arch::BlockKind;
use crate::model::{ModelState, ModuleGroup, Role};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the count is taken: canvas and RoI counts (defaults: 512², torchvision's 1000 proposals, 100 detections).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FlopsAt {
    pub height: usize,
    pub width: usize,
    pub box_rois: usize,
    pub head_rois: usize,
}

impl Default for FlopsAt {
    fn default() -> Self {
        FlopsAt { height: 512, width: 512, box_rois: 1000, head_rois: 100 }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Cost {
    pub params: usize,
    pub flops: u64,
}

/// Output positions per image at which a weight is applied (its MACs are numel × positions).
fn positions(state: &ModelState, name: &str, at: &FlopsAt) -> u64 {
    let grid = |stride: usize| (at.height.div_ceil(stride) * at.width.div_ceil(stride)) as u64;
    let bottleneck = state.arch.backbone.as_ref().is_some_and(|b| b.block == BlockKind::Bottleneck);
    let (box_rois, head_rois) = (at.box_rois as u64, at.head_rois as u64);
    if name.starts_with("backbone.body.conv1.") {
        return grid(2);
    }
    if let Some(rest) = name.strip_prefix("backbone.body.layer") {
        let stage: u32 = rest[..1].parse().unwrap_or(1);
        let stride = 4usize << (stage - 1);
        // ResNet v1.5 bottleneck: the first block's 1×1 conv1 runs before the stride.
        if bottleneck && stage > 1 && rest[1..].starts_with(".0.conv1.") {
            return grid(stride / 2);
        }
        return grid(stride);
    }
    for blocks in ["backbone.fpn.inner_blocks.", "backbone.fpn.layer_blocks."] {
        if let Some(rest) = name.strip_prefix(blocks) {
            let level: usize = rest[..1].parse().unwrap_or(0);
            return grid(4 << level);
        }
    }
    if name.starts_with("rpn.") {
        return (0..5).map(|l| grid(4 << l)).sum();
    }
    if name.starts_with("roi_heads.box_head.") || name.starts_with("roi_heads.box_predictor.") {
        return box_rois;
    }
    if name.starts_with("roi_heads.mask_predictor.mask_fcn_logits") {
        return head_rois * 28 * 28;
    }
    if name.starts_with("roi_heads.mask") || name.starts_with("roi_heads.keypoint") {
        // Convs on the 14×14 pooled grid; the transposed convs' MACs are also numel × input positions.
        return head_rois * 14 * 14;
    }
    0
}

/// Parameters (all learned tensors) and FLOPs (conv/linear weights) per module group.
pub fn costs(state: &ModelState, at: &FlopsAt) -> BTreeMap<ModuleGroup, Cost> {
    let mut out: BTreeMap<ModuleGroup, Cost> = BTreeMap::new();
    for w in &state.weights.tensors {
        let c = out.entry(w.group.clone()).or_default();
        c.params += w.numel();
        if w.role == Role::Weight {
            c.flops += 2 * w.numel() as u64 * positions(state, &w.name, at);
        }
    }
    out
}

/// FLOPs of the non-zero weights only (what the sparse kernels compute), same conventions as [`costs`].
pub fn nonzero_flops(state: &ModelState, at: &FlopsAt) -> u64 {
    state
        .weights
        .tensors
        .iter()
        .filter(|w| w.role == Role::Weight)
        .map(|w| 2 * w.values.nonzeros() as u64 * positions(state, &w.name, at))
        .sum()
}
