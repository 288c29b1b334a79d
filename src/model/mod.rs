//! The model inside the tool: (ArchSpec, Weights, Masks), imported from a user's ONNX, which is kept as read
//! so that export only has to replace initializer data.
pub mod arch;
pub mod batchnorm;
pub mod groups;
pub mod inspect;
pub mod masks;
pub mod names;
pub mod values;

use crate::error::{Context, Error, Result};
use crate::onnx::{for_each_node, tensor, OnnxModel};
pub use arch::{ArchSpec, ModelKind};
pub use groups::ModuleGroup;
pub use masks::{Mask, Masks};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
pub use values::Values;

/// How a parameter is used by the graph; only `Weight` is pruned by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The weight input of Conv, ConvTranspose, Gemm or MatMul.
    Weight,
    /// The bias input of Conv, ConvTranspose or Gemm.
    Bias,
    /// Any other learned tensor (normalisation affine parameters, embeddings).
    Other,
}

#[derive(Clone, Debug)]
pub struct WeightTensor {
    /// The parameter's name: torchvision's (`backbone.body.layer1.0.conv1.weight`) where it can be known.
    pub name: String,
    /// The ONNX initializer that holds it.
    pub initializer: String,
    pub shape: Vec<usize>,
    /// Dense, or packed as read from a compact ticket file.
    pub values: Values,
    pub role: Role,
    /// The op that consumes it as weight or bias, when there is one.
    pub op: Option<String>,
    pub group: ModuleGroup,
    /// True when the initializer had an exporter-made name and `name` was recovered from the node's scope.
    pub recovered_name: bool,
}

impl WeightTensor {
    pub fn numel(&self) -> usize {
        self.values.len()
    }

    pub fn zeros(&self) -> usize {
        self.values.len() - self.values.nonzeros()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Weights {
    pub tensors: Vec<WeightTensor>,
}

impl Weights {
    pub fn get(&self, name: &str) -> Option<&WeightTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn total(&self) -> usize {
        self.tensors.iter().map(|t| t.numel()).sum()
    }
}

/// Float initializers that are not parameters: folded constants (FrozenBatchNorm scale/shift), BatchNorm
/// running statistics and other buffers. Counted, never pruned.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Constants {
    pub tensors: usize,
    pub values: usize,
}

#[derive(Clone, Debug)]
pub struct ModelState {
    pub source: OnnxModel,
    pub arch: ArchSpec,
    pub weights: Weights,
    pub masks: Masks,
    pub constants: Constants,
    /// Folded FrozenBatchNorm affine tensors (`backbone.body.bn1.scale` / `.shift`), found by their position
    /// after a Conv (the consuming Mul/Add node's scope). Not parameters: the emitted graphs need them.
    pub buffers: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

/// The index of the first value that is not finite (of a packed tensor: in the dense order).
fn non_finite(values: &Values) -> Option<usize> {
    match values {
        Values::Dense(v) => v.iter().position(|v| !v.is_finite()),
        Values::Packed(p) => p.positions().zip(&p.values).find(|(_, v)| !v.is_finite()).map(|(i, _)| i),
    }
}

const BUFFER_SUFFIXES: &[&str] = &[".running_mean", ".running_var", ".num_batches_tracked"];

impl ModelState {
    pub fn import(path: &Path) -> Result<Self> {
        Self::from_onnx(crate::onnx::compact::load_onnx_or_compact(path)?)
    }

    /// Imports a model and applies a mask file when one is given (a ticket is dense weights + masks).
    pub fn load(path: &Path, masks: Option<&Path>) -> Result<Self> {
        let mut state = Self::import(path)?;
        if let Some(m) = masks {
            state.apply_masks(Masks::load(m)?, m)?;
        }
        Ok(state)
    }

    pub fn from_onnx(source: OnnxModel) -> Result<Self> {
        let graph = source.graph();
        // Which op consumes each initializer, and as which input: that decides weight vs bias.
        let mut uses: HashMap<&str, (Role, &str, &str)> = HashMap::new();
        let mut affine: HashMap<&str, (&str, &str)> = HashMap::new();
        for_each_node(graph, &mut |node| {
            if matches!(node.op_type(), "Mul" | "Add") {
                for input in &node.input {
                    affine.entry(input.as_str()).or_insert((node.op_type(), node.name()));
                }
            }
            let op = node.op_type();
            let role_of = |i: usize| match (op, i) {
                ("Conv" | "ConvTranspose" | "Gemm", 1) => Some(Role::Weight),
                ("Conv" | "ConvTranspose" | "Gemm", 2) => Some(Role::Bias),
                ("MatMul", 0 | 1) => Some(Role::Weight),
                _ => None,
            };
            for (i, input) in node.input.iter().enumerate() {
                if let Some(role) = role_of(i) {
                    uses.entry(input.as_str()).or_insert((role, op, node.name()));
                }
            }
        });

        let mut weights = Vec::new();
        let mut constants = Constants::default();
        let mut anonymous = Vec::new();
        let mut buffers = BTreeMap::new();
        // Every float type a weight can have: FLOAT16/BFLOAT16/DOUBLE are read as f32 (exactly for the 16-bit
        // types) and written back in their own type, so no weight is skipped for its type.
        for init in graph.initializer.iter().filter(|t| tensor::is_weight_float(t)) {
            let name = init.name();
            let use_ = uses.get(name).copied();
            let named_param = names::is_param_name(name) && !BUFFER_SUFFIXES.iter().any(|s| name.ends_with(s));
            if !named_param && use_.is_none() {
                if let Some(b) = affine.get(name).and_then(|(op, node)| names::affine_buffer(op, node)) {
                    let v = source.f32_values(init)?;
                    let shape = tensor::dims(init).with_context(&source.path, || format!("initializer '{name}'"))?;
                    buffers.entry(b).or_insert((shape, v));
                }
                constants.tensors += 1;
                constants.values += tensor::numel(init).unwrap_or(0);
                continue;
            }
            let shape = tensor::dims(init).with_context(&source.path, || format!("initializer '{name}'"))?;
            let values = match source.packed.get(name) {
                Some(p) => Values::Packed(p.clone()),
                None => Values::Dense(source.f32_values(init)?),
            };
            if let Some(bad) = non_finite(&values) {
                return Err(Error::input(&source.path, format!("initializer '{name}' has a non-finite value at index {bad}")));
            }
            let (role, op, node) = match use_ {
                Some((r, op, node)) => (r, Some(op.to_string()), Some(node)),
                None => (Role::Other, None, None),
            };
            if !named_param {
                anonymous.push((weights.len(), node.map(str::to_string)));
            }
            weights.push(WeightTensor {
                name: name.to_string(),
                initializer: name.to_string(),
                shape,
                values,
                role,
                op,
                group: ModuleGroup::Prefix(String::new()),
                recovered_name: false,
            });
        }
        names::recover(&mut weights, &anonymous);

        let shapes: arch::Shapes = weights.iter().map(|w| (w.name.clone(), w.shape.clone())).collect();
        let arch = ArchSpec::infer(&shapes);
        let node_of: HashMap<String, String> =
            anonymous.iter().filter_map(|(i, n)| n.clone().map(|n| (weights[*i].initializer.clone(), n))).collect();
        for w in weights.iter_mut() {
            w.group = match arch.kind {
                k if k.is_detector() => ModuleGroup::of_detector_param(&w.name)
                    .unwrap_or_else(|| ModuleGroup::of_generic(&w.name, node_of.get(&w.initializer).map(String::as_str))),
                ModelKind::Classifier => ModuleGroup::of_classifier_param(&w.name),
                _ => ModuleGroup::of_generic(&w.name, node_of.get(&w.initializer).map(String::as_str)),
            };
        }
        if arch.kind == ModelKind::Classifier {
            // Eval-mode BatchNorm folded as the detectors' FrozenBatchNorm (see `batchnorm`).
            buffers.extend(batchnorm::frozen_bn_buffers(&source)?);
        }
        Ok(ModelState { source, arch, weights: Weights { tensors: weights }, masks: Masks::default(), constants, buffers })
    }

    pub fn path(&self) -> &Path {
        &self.source.path
    }

    /// Prunable tensors of the whole model (weights of Conv/ConvTranspose/Gemm/MatMul).
    pub fn prunable(&self) -> impl Iterator<Item = &WeightTensor> {
        self.weights.tensors.iter().filter(|w| w.role == Role::Weight)
    }

    /// Groups in table order, with their tensors.
    pub fn groups(&self) -> BTreeMap<ModuleGroup, Vec<&WeightTensor>> {
        let mut out: BTreeMap<ModuleGroup, Vec<&WeightTensor>> = BTreeMap::new();
        for w in &self.weights.tensors {
            out.entry(w.group.clone()).or_default().push(w);
        }
        out
    }

    /// Applies masks (checked against names and shapes) and zeroes the masked weights, as export will.
    pub fn apply_masks(&mut self, masks: Masks, masks_path: &Path) -> Result<()> {
        for (name, mask) in &masks.map {
            let w =
                self.weights.tensors.iter_mut().find(|w| &w.name == name).ok_or_else(|| {
                    Error::input(masks_path, format!("mask '{name}' names no parameter of {}", self.source.path.display()))
                })?;
            if w.shape != mask.shape {
                return Err(Error::input(masks_path, format!("mask '{name}' has shape {:?}, the parameter has {:?}", mask.shape, w.shape)));
            }
            for (v, &m) in w.values.to_mut().iter_mut().zip(&mask.keep) {
                if m == 0 {
                    *v = 0.0;
                }
            }
        }
        self.masks.merge(masks);
        Ok(())
    }

    /// Initializer name → values for every tensor whose values differ from the source (pruned or trained).
    pub fn changed_initializers(&self) -> Result<HashMap<String, Vec<f32>>> {
        let mut out = HashMap::new();
        for w in &self.weights.tensors {
            // A tensor still held packed as imported is the source's own.
            let imported = self.source.packed.get(&w.initializer);
            if w.values.packed().is_some_and(|p| imported.is_some_and(|i| Arc::ptr_eq(p, i))) {
                continue;
            }
            let init = self.source.initializer(&w.initializer).expect("imported from this model");
            if self.source.f32_values(init)? != *w.values.dense() {
                out.insert(w.initializer.clone(), w.values.dense().into_owned());
            }
        }
        Ok(out)
    }
}
