//! A classifier's BatchNorm as the detectors' FrozenBatchNorm: torchvision's detectors freeze the backbone's
//! normalisation as `x · scale + shift` with `scale = γ / sqrt(running_var + ε)` and `shift = β − mean · scale`
//! (`FrozenBatchNorm2d`). Folding a classifier's eval-mode BatchNorm the same way gives its body the very
//! buffers a detector's body has, so one network description serves both, and a pretrained body transfers
//! onto a detector tensor for tensor.
use crate::error::{Error, Result};
use crate::onnx::{for_each_node, OnnxModel};
use std::collections::BTreeMap;

/// `{module}.scale` / `{module}.shift` for every BatchNormalization node whose inputs carry torchvision names
/// (`layer1.0.bn1.weight`, `.bias`, `.running_mean`, `.running_var`).
pub fn frozen_bn_buffers(source: &OnnxModel) -> Result<BTreeMap<String, (Vec<usize>, Vec<f32>)>> {
    let mut out = BTreeMap::new();
    let mut nodes = Vec::new();
    for_each_node(source.graph(), &mut |n| {
        if n.op_type() == "BatchNormalization" && n.input.len() == 5 {
            nodes.push(n);
        }
    });
    for n in nodes {
        let Some(module) = n.input[1].strip_suffix(".weight") else { continue };
        let eps = n.attribute.iter().find(|a| a.name() == "epsilon").and_then(|a| a.f).unwrap_or(1e-5);
        let values = |name: &str| -> Result<Option<Vec<f32>>> { source.initializer(name).map(|t| source.f32_values(t)).transpose() };
        let (Some(gamma), Some(beta), Some(mean), Some(var)) =
            (values(&n.input[1])?, values(&n.input[2])?, values(&n.input[3])?, values(&n.input[4])?)
        else {
            continue;
        };
        let c = gamma.len();
        if [beta.len(), mean.len(), var.len()] != [c; 3] {
            return Err(Error::input(&source.path, format!("BatchNorm '{module}' has parameters of different lengths")));
        }
        let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
        let shift: Vec<f32> = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        // [1, C, 1, 1], the shape a detector's folded FrozenBatchNorm constants have.
        out.insert(format!("{module}.scale"), (vec![1, c, 1, 1], scale));
        out.insert(format!("{module}.shift"), (vec![1, c, 1, 1], shift));
    }
    Ok(out)
}
