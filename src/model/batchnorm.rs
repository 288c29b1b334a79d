//! A classifier's BatchNorm as the detectors' FrozenBatchNorm: torchvision's detectors freeze the backbone's
//! normalisation as `x · scale + shift` with `scale = γ / sqrt(running_var + ε)` and `shift = β − mean · scale`
//! (`FrozenBatchNorm2d`). Folding a classifier's eval-mode BatchNorm the same way gives its body the very
//! buffers a detector's body has, so one network description serves both, and a pretrained body transfers
//! onto a detector tensor for tensor.
use crate::error::{Error, Result};
use crate::onnx::{for_each_node, OnnxModel};
use std::collections::BTreeMap;

/// One BatchNormalization's parameters, as its node holds them.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub eps: f32,
}

impl BatchNorm {
    /// FrozenBatchNorm's `(scale, shift)` of this norm with the statistics `mean` and `var` (its own running
    /// statistics, or others estimated on data).
    pub fn folded(&self, mean: &[f32], var: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = self.gamma.iter().zip(var).map(|(g, v)| g / (v + self.eps).sqrt()).collect();
        let shift: Vec<f32> = self.beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        (scale, shift)
    }
}

/// Every BatchNormalization node whose inputs carry torchvision names (`layer1.0.bn1.weight`, `.bias`,
/// `.running_mean`, `.running_var`), by module (`layer1.0.bn1`).
pub fn batchnorms(source: &OnnxModel) -> Result<BTreeMap<String, BatchNorm>> {
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
        out.insert(module.to_string(), BatchNorm { gamma, beta, mean, var, eps });
    }
    Ok(out)
}

/// `{module}.scale` / `{module}.shift` for every BatchNormalization node [`batchnorms`] finds.
pub fn frozen_bn_buffers(source: &OnnxModel) -> Result<BTreeMap<String, (Vec<usize>, Vec<f32>)>> {
    let mut out = BTreeMap::new();
    for (module, bn) in batchnorms(source)? {
        let (scale, shift) = bn.folded(&bn.mean, &bn.var);
        // [1, C, 1, 1], the shape a detector's folded FrozenBatchNorm constants have.
        let c = scale.len();
        out.insert(format!("{module}.scale"), (vec![1, c, 1, 1], scale));
        out.insert(format!("{module}.shift"), (vec![1, c, 1, 1], shift));
    }
    Ok(out)
}
