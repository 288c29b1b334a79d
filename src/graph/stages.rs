//! tract stage graphs. tract cannot run torchvision's full export (If from batched NMS, RoiAlign, Loop), so
//! inference is split where Rust takes over: (1) image → FPN features + RPN outputs, (2) pooled box features →
//! class logits + deltas, (3) pooled mask features → mask logits, (4) pooled keypoint features → heatmaps.
//! Every stage has concrete shapes: one plan per canvas size and a fixed (padded) RoI count.
use super::builder::GraphBuilder;
use super::builder::GraphBuilder as Builder;
use super::net::{Constants, Net, Params, V};
use crate::error::{Error, Result};
use crate::model::ModelState;
use crate::onnx::compact::Packed;
use crate::onnx::proto::ModelProto;
use crate::sparse::{choice::density, Kernels, LayerShape};
use std::sync::Arc;

/// Inference parameters with a kernel choice: a conv or linear layer becomes a sparse op when `kernels` says so
/// for its density. Layers the sparse path cannot run stay dense, with a note when sparse was asked for.
pub struct Inference<'a> {
    pub state: &'a ModelState,
    pub kernels: Kernels,
    /// Layers emitted sparse, by weight name.
    pub sparse_layers: Vec<String>,
    pub notes: Vec<String>,
}

impl<'a> Inference<'a> {
    pub fn new(state: &'a ModelState, kernels: Kernels) -> Self {
        Inference { state, kernels, sparse_layers: Vec::new(), notes: Vec::new() }
    }
}

impl Params for Inference<'_> {
    fn has(&self, name: &str) -> bool {
        Constants(self.state).has(name)
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Constants(self.state).shape(name)
    }

    fn param(&mut self, b: &mut Builder, name: &str) -> Result<String> {
        Constants(self.state).param(b, name)
    }

    fn values(&self, name: &str) -> Option<Vec<f32>> {
        match (self.state.weights.get(name), self.state.buffers.get(name)) {
            (Some(w), _) => Some(w.values.dense().into_owned()),
            (None, Some((_, v))) => Some(v.clone()),
            _ => None,
        }
    }

    fn packed(&self, name: &str) -> Option<Arc<Packed>> {
        let w = self.state.weights.get(name)?;
        Some(match w.values.packed() {
            Some(p) => p.clone(),
            None => Arc::new(Packed::from_dense(&w.values.dense())),
        })
    }

    fn sparse(&mut self, name: &str, shape: LayerShape) -> bool {
        if self.kernels == Kernels::Dense {
            return false;
        }
        let Some(w) = self.state.weights.get(name) else { return false };
        let runnable = match shape {
            LayerShape::Conv { .. } => w.shape.len() == 4 && w.shape[2] == w.shape[3],
            LayerShape::Gemm { .. } => w.shape.len() == 2,
        };
        if !runnable {
            if self.kernels == Kernels::Sparse {
                self.notes.push(format!("{name} {:?}: the sparse kernels do not run this shape; it runs dense", w.shape));
            }
            return false;
        }
        let sparse = self.kernels.use_sparse(shape, density(w.values.nonzeros(), w.values.len()));
        if sparse {
            self.sparse_layers.push(name.to_string());
        }
        sparse
    }
}

pub const LEVELS: usize = 5;

pub fn feature_channels(state: &ModelState) -> Result<usize> {
    state.arch.fpn_channels.ok_or_else(|| Error::input(state.path(), "not an FPN detector: no backbone.fpn weights"))
}

/// Stage 1 on a [1, 3, height, width] normalised, padded canvas. Outputs `feat_{l}` (P2..P5, pool),
/// `objectness_{l}` [1, A, h, w] and `deltas_{l}` [1, 4A, h, w] for the five levels.
pub fn backbone_rpn(state: &ModelState, height: usize, width: usize) -> Result<ModelProto> {
    backbone_rpn_with(&mut Inference::new(state, Kernels::Dense), height, width)
}

/// [`backbone_rpn`] with the kernel choice of `p`.
pub fn backbone_rpn_with(p: &mut Inference, height: usize, width: usize) -> Result<ModelProto> {
    let state = p.state;
    let backbone = state.arch.backbone.as_ref().ok_or_else(|| Error::input(state.path(), "no ResNet backbone found"))?;
    if !height.is_multiple_of(32) || !width.is_multiple_of(32) {
        return Err(Error::Input(format!("canvas {height}×{width} must be a multiple of 32")));
    }
    let mut b = GraphBuilder::new("ticket_backbone_rpn");
    let image = b.input("image", &[1, 3, height as i64, width as i64]);
    let mut net = Net { b: &mut b, p };
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
    p: &mut Inference,
    graph_name: &str,
    rois: usize,
    size: usize,
    head: impl FnOnce(&mut Net<Inference>, &V) -> Result<Vec<(String, &'static str)>>,
) -> Result<ModelProto> {
    let c = feature_channels(p.state)?;
    let mut b = GraphBuilder::new(graph_name);
    let x = b.input("pooled", &[rois as i64, c as i64, size as i64, size as i64]);
    let outputs = head(&mut Net { b: &mut b, p }, &V { name: x, shape: [rois, c, size, size] })?;
    for (value, name) in outputs {
        b.output(&value, name);
    }
    Ok(b.finish())
}

/// Stage 2 on pooled [rois, C, 7, 7]: `class_logits` [rois, K] and `box_deltas` [rois, 4K].
pub fn box_stage(state: &ModelState, rois: usize) -> Result<ModelProto> {
    box_stage_with(&mut Inference::new(state, Kernels::Dense), rois)
}

/// [`box_stage`] with the kernel choice of `p`.
pub fn box_stage_with(p: &mut Inference, rois: usize) -> Result<ModelProto> {
    head_stage(p, "ticket_box_head", rois, 7, |net, x| {
        let (cls, deltas) = net.box_head(x)?;
        Ok(vec![(cls, "class_logits"), (deltas, "box_deltas")])
    })
}

/// Stage 3 on pooled [rois, C, 14, 14]: `mask_logits` [rois, K, 28, 28].
pub fn mask_stage(state: &ModelState, rois: usize) -> Result<ModelProto> {
    mask_stage_with(&mut Inference::new(state, Kernels::Dense), rois)
}

/// [`mask_stage`] with the kernel choice of `p`.
pub fn mask_stage_with(p: &mut Inference, rois: usize) -> Result<ModelProto> {
    head_stage(p, "ticket_mask_head", rois, 14, |net, x| Ok(vec![(net.mask_head(x)?.name, "mask_logits")]))
}

/// Stage 4 on pooled [rois, C, 14, 14]: `heatmaps` [rois, K, 56, 56].
pub fn keypoint_stage(state: &ModelState, rois: usize) -> Result<ModelProto> {
    keypoint_stage_with(&mut Inference::new(state, Kernels::Dense), rois)
}

/// [`keypoint_stage`] with the kernel choice of `p`.
pub fn keypoint_stage_with(p: &mut Inference, rois: usize) -> Result<ModelProto> {
    head_stage(p, "ticket_keypoint_head", rois, 14, |net, x| Ok(vec![(net.keypoint_head(x)?.name, "heatmaps")]))
}
