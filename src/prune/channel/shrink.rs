//! Cutting channels out of tensors and writing them back into the user's ONNX. torchvision's export computes
//! every channel-dependent shape at run time (Shape → Gather), so shrinking the initializers is the whole
//! rewrite; the result is imported again, so ArchSpec, tract stages and training cores follow the new widths.
use crate::error::Result;
use crate::model::{Masks, ModelState};
use crate::onnx::{external, for_each_node, tensor, OnnxModel};
use std::collections::HashMap;

/// Tensor name (parameter or folded FrozenBatchNorm buffer) → the ONNX initializer holding it.
pub fn initializer_names(state: &ModelState) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = state.weights.tensors.iter().map(|w| (w.name.clone(), w.initializer.clone())).collect();
    let graph = state.source.graph();
    let inits: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    // Buffers were named at import from the Mul/Add node that consumes them (model::names::affine_buffer).
    for_each_node(graph, &mut |node| {
        if matches!(node.op_type(), "Mul" | "Add") {
            for input in node.input.iter().filter(|i| inits.contains(i.as_str())) {
                if let Some(b) = crate::model::names::affine_buffer(node.op_type(), node.name()) {
                    if state.buffers.contains_key(&b) {
                        out.entry(b).or_insert_with(|| input.clone());
                    }
                }
            }
        }
    });
    out
}

/// Keeps, along `axis`, the blocks of `block` indices of the channels in `keep` (ascending).
pub fn take<T: Copy>(values: &[T], shape: &[usize], axis: usize, block: usize, keep: &[usize]) -> (Vec<T>, Vec<usize>) {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let n = shape[axis];
    let mut out = Vec::with_capacity(outer * keep.len() * block * inner);
    for o in 0..outer {
        for &c in keep {
            for i in c * block..(c + 1) * block {
                let start = (o * n + i) * inner;
                out.extend_from_slice(&values[start..start + inner]);
            }
        }
    }
    let mut new_shape = shape.to_vec();
    new_shape[axis] = keep.len() * block;
    (out, new_shape)
}

/// A new state whose source is `state`'s ONNX with its current weights written in and the initializers in
/// `edits` (tensor name → shape, values) replaced, re-imported; `masks` are the new state's masks.
pub fn rewrite(state: &ModelState, edits: &HashMap<String, (Vec<usize>, Vec<f32>)>, masks: Masks) -> Result<ModelState> {
    let names = initializer_names(state);
    let mut replace = state.changed_initializers()?;
    let mut reshaped: HashMap<String, Vec<usize>> = HashMap::new();
    for (t, (shape, values)) in edits {
        let init = names.get(t).cloned().unwrap_or_else(|| t.clone());
        replace.insert(init.clone(), values.clone());
        reshaped.insert(init, shape.clone());
    }
    let mut source: OnnxModel = state.source.clone();
    let graph = source.proto.graph.as_mut().expect("checked at load");
    for t in graph.initializer.iter_mut() {
        let Some(values) = replace.get(t.name()) else { continue };
        if let Some(shape) = reshaped.get(t.name()) {
            t.dims = shape.iter().map(|&d| d as i64).collect();
        }
        // A replaced tensor read packed holds its new values in the proto from now on.
        if source.packed.remove(t.name()).is_some_and(|p| !p.float_data) {
            t.raw_data = Some(Vec::new().into());
        }
        // A replaced tensor that lived in an external file is kept inline from now on; saving decides again.
        if external::is_external(t) {
            source.external.remove(t.name());
            t.data_location = None;
            t.external_data.clear();
            t.raw_data = Some(Vec::new().into());
        }
        tensor::set_f32_values(t, values);
    }
    // Value infos that pin a now-different channel count would contradict the initializers.
    for vi in graph.value_info.iter_mut().chain(graph.input.iter_mut()) {
        if let Some(shape) = reshaped.get(vi.name()) {
            set_dims(vi, shape);
        }
    }
    let mut out = ModelState::from_onnx(source)?;
    out.masks = masks;
    Ok(out)
}

fn set_dims(vi: &mut crate::onnx::proto::ValueInfoProto, shape: &[usize]) {
    use crate::onnx::proto::{tensor_shape_proto::dimension::Value as Dim, type_proto};
    if let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        if let Some(s) = t.shape.as_mut() {
            for (d, &n) in s.dim.iter_mut().zip(shape) {
                d.value = Some(Dim::DimValue(n as i64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::take;

    #[test]
    fn take_keeps_blocks_along_an_axis() {
        // [2, 3·2] with blocks of 2 on axis 1: keep channels 0 and 2.
        let v: Vec<i32> = (0..12).collect();
        let (out, shape) = take(&v, &[2, 6], 1, 2, &[0, 2]);
        assert_eq!(shape, vec![2, 4]);
        assert_eq!(out, vec![0, 1, 4, 5, 6, 7, 10, 11]);
        let (out, shape) = take(&v, &[3, 4], 0, 1, &[1]);
        assert_eq!((out, shape), (vec![4, 5, 6, 7], vec![1, 4]));
    }
}
