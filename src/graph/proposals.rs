//! The RPN forward a training step needs before its targets exist: torchvision computes proposals from the
//! same forward pass it trains (`rpn(images, features)` in training mode, detached), and RoI sampling depends
//! on them. The training core cannot return them mid-step, so each step first runs this graph (backbone, FPN,
//! RPN head on the batch) with the session's *current* parameters, then Rust decodes, filters and samples.
//!
//! Parameters are graph inputs named as the checkpoint's (`<weight>` and `<weight>.mask`, W·M as in the
//! training core); the worker feeds them from its checkpoint state, so nothing is regenerated as weights move.
//! FrozenBatchNorm scale/shift are constants (never trained).
use super::builder::GraphBuilder;
use super::net::{Constants, Net, Params, V};
use crate::error::{Error, Result};
use crate::model::{ModelState, Role};
use crate::onnx::proto::ModelProto;
use std::collections::HashMap;

/// Parameters as graph inputs (weights, and masks of prunable weights).
struct ParamInputs<'a> {
    state: &'a ModelState,
    values: HashMap<String, String>,
}

impl Params for ParamInputs<'_> {
    fn has(&self, name: &str) -> bool {
        Constants(self.state).has(name)
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Constants(self.state).shape(name)
    }

    fn param(&mut self, b: &mut GraphBuilder, name: &str) -> Result<String> {
        let Some(w) = self.state.weights.get(name) else {
            return Constants(self.state).param(b, name);
        };
        if let Some(v) = self.values.get(name) {
            return Ok(v.clone());
        }
        let dims: Vec<i64> = w.shape.iter().map(|&d| d as i64).collect();
        let mut value = b.input(name, &dims);
        if w.role == Role::Weight {
            let mask = b.input(&format!("{name}.mask"), &dims);
            value = b.node("Mul", &[&value, &mask], &format!("{name}/masked"), vec![]);
        }
        self.values.insert(name.to_string(), value.clone());
        Ok(value)
    }
}

/// Backbone + FPN + RPN head on `images [batch, 3, height, width]`; outputs `objectness_{l}` [B, A, h, w] and
/// `deltas_{l}` [B, 4A, h, w] for the five levels. Every parameter it reads is an input.
pub fn rpn_forward(state: &ModelState, batch: usize, height: usize, width: usize) -> Result<ModelProto> {
    let backbone = state.arch.backbone.as_ref().ok_or_else(|| Error::input(state.path(), "no ResNet backbone found"))?;
    if batch == 0 || height == 0 || width == 0 || !height.is_multiple_of(32) || !width.is_multiple_of(32) {
        return Err(Error::Input(format!("RPN forward: batch {batch} and canvas {height}×{width} (multiples of 32) must be positive")));
    }
    let mut b = GraphBuilder::new("ticket_rpn_forward");
    let mut p = ParamInputs { state, values: HashMap::new() };
    let images = b.input("images", &[batch as i64, 3, height as i64, width as i64]);
    let mut net = Net { b: &mut b, p: &mut p };
    let c =
        net.resnet(&V { name: images, shape: [batch, 3, height, width] }, "backbone.body.", backbone.block, &backbone.blocks_per_stage)?;
    let feats = net.fpn(&c)?;
    let heads = feats.iter().map(|f| net.rpn_head(f)).collect::<Result<Vec<_>>>()?;
    for (l, (obj, del)) in heads.iter().enumerate() {
        b.output(&obj.name, &format!("objectness_{l}"));
        b.output(&del.name, &format!("deltas_{l}"));
    }
    Ok(b.finish())
}
