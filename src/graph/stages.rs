//! tract stage graphs. tract cannot run torchvision's full export (If from batched NMS, RoiAlign, Loop), so
//! inference is split where Rust takes over: (1) image → FPN features + RPN outputs, (2) pooled box features →
//! class logits + deltas, (3) pooled mask features → mask logits, (4) pooled keypoint features → heatmaps.
//! Every stage has concrete shapes: one plan per canvas size and a fixed (padded) RoI count.
use super::builder::GraphBuilder;
use super::net::{Constants, Net, V};
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::onnx::proto::ModelProto;

pub const LEVELS: usize = 5;

pub fn feature_channels(state: &ModelState) -> Result<usize> {
    state.arch.fpn_channels.ok_or_else(|| Error::input(state.path(), "not an FPN detector: no backbone.fpn weights"))
}

/// Stage 1 on a [1, 3, height, width] normalised, padded canvas. Outputs `feat_{l}` (P2..P5, pool),
/// `objectness_{l}` [1, A, h, w] and `deltas_{l}` [1, 4A, h, w] for the five levels.
pub fn backbone_rpn(state: &ModelState, height: usize, width: usize) -> Result<ModelProto> {
    let backbone = state.arch.backbone.as_ref().ok_or_else(|| Error::input(state.path(), "no ResNet backbone found"))?;
    if height % 32 != 0 || width % 32 != 0 {
        return Err(Error::Input(format!("canvas {height}×{width} must be a multiple of 32")));
    }
    let mut b = GraphBuilder::new("ticket_backbone_rpn");
    let mut p = Constants(state);
    let image = b.input("image", &[1, 3, height as i64, width as i64]);
    let mut net = Net { b: &mut b, p: &mut p };
    let c = net.resnet(&V { name: image, shape: [1, 3, height, width] }, "backbone.body.", backbone.block, &backbone.blocks_per_stage)?;
    let feats = net.fpn(&c)?;
    let mut heads = Vec::new();
    for f in &feats {
        heads.push(net.rpn_head(f)?);
    }
    for (l, (f, (obj, del))) in feats.iter().zip(&heads).enumerate() {
        b.output(&f.name, &format!("feat_{l}"));
        b.output(&obj.name, &format!("objectness_{l}"));
        b.output(&del.name, &format!("deltas_{l}"));
    }
    Ok(b.finish())
}

/// A head stage on pooled [rois, C, size, size]; `head` emits the nodes and names the outputs.
fn head_stage(
    state: &ModelState,
    graph_name: &str,
    rois: usize,
    size: usize,
    head: impl FnOnce(&mut Net<Constants>, &V) -> Result<Vec<(String, &'static str)>>,
) -> Result<ModelProto> {
    let c = feature_channels(state)?;
    let mut b = GraphBuilder::new(graph_name);
    let mut p = Constants(state);
    let x = b.input("pooled", &[rois as i64, c as i64, size as i64, size as i64]);
    let outputs = head(&mut Net { b: &mut b, p: &mut p }, &V { name: x, shape: [rois, c, size, size] })?;
    for (value, name) in outputs {
        b.output(&value, name);
    }
    Ok(b.finish())
}

/// Stage 2 on pooled [rois, C, 7, 7]: `class_logits` [rois, K] and `box_deltas` [rois, 4K].
pub fn box_stage(state: &ModelState, rois: usize) -> Result<ModelProto> {
    head_stage(state, "ticket_box_head", rois, 7, |net, x| {
        let (cls, deltas) = net.box_head(x)?;
        Ok(vec![(cls, "class_logits"), (deltas, "box_deltas")])
    })
}

/// Stage 3 on pooled [rois, C, 14, 14]: `mask_logits` [rois, K, 28, 28].
pub fn mask_stage(state: &ModelState, rois: usize) -> Result<ModelProto> {
    head_stage(state, "ticket_mask_head", rois, 14, |net, x| Ok(vec![(net.mask_head(x)?.name, "mask_logits")]))
}

/// Stage 4 on pooled [rois, C, 14, 14]: `heatmaps` [rois, K, 56, 56].
pub fn keypoint_stage(state: &ModelState, rois: usize) -> Result<ModelProto> {
    head_stage(state, "ticket_keypoint_head", rois, 14, |net, x| Ok(vec![(net.keypoint_head(x)?.name, "heatmaps")]))
}
