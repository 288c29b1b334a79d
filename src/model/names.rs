//! Parameter names. torch's exporter keeps parameter names for initializers unless constant folding made a new
//! tensor (Conv+BatchNorm fusion, transposed MatMul weights); those get names like `onnx::Conv_193`. Their module
//! path is still in the consuming node's scoped name (`/layer1/layer1.0/conv1/Conv`), so it is recovered from
//! there, marked as recovered, and reported — never guessed silently.
use super::{Role, WeightTensor};
use std::collections::HashSet;

/// A torch parameter name: dotted path ending in a field, no exporter prefix.
pub fn is_param_name(name: &str) -> bool {
    !name.starts_with("onnx::") && !name.starts_with('/') && name.contains('.') && !name.ends_with('.')
}

/// `/backbone/body/layer2/layer2.0/downsample/downsample.1/Mul` → `backbone.body.layer2.0.downsample.1`. A
/// list item's scope repeats its parent's name (`layer2`, then `layer2.0`), so it replaces that component.
pub fn module_path_from_node(node_name: &str) -> Option<String> {
    let parts: Vec<&str> = node_name.trim_start_matches('/').split('/').collect();
    if parts.len() < 2 {
        return None;
    }
    let mut path: Vec<&str> = Vec::new();
    for seg in &parts[..parts.len() - 1] {
        if seg.is_empty() {
            return None;
        }
        if path.last().is_some_and(|last| seg.starts_with(&format!("{last}."))) {
            path.pop();
        }
        path.push(seg);
    }
    Some(path.join("."))
}

/// The name of a folded FrozenBatchNorm tensor: the scale is the constant of the `bnX/Mul` node, the shift
/// that of `bnX/Add` (torchvision's FrozenBatchNorm2d computes x * scale + shift).
pub fn affine_buffer(op: &str, node: &str) -> Option<String> {
    let path = module_path_from_node(node)?;
    let field = if op == "Mul" { "scale" } else { "shift" };
    Some(format!("{path}.{field}"))
}

/// Renames anonymous weights/biases after their node's module path where that gives a new, unique name.
pub fn recover(weights: &mut [WeightTensor], anonymous: &[(usize, Option<String>)]) {
    let mut taken: HashSet<String> = weights.iter().map(|w| w.name.clone()).collect();
    for (i, node) in anonymous {
        let w = &mut weights[*i];
        let field = match w.role {
            Role::Weight => "weight",
            Role::Bias => "bias",
            Role::Other => continue,
        };
        if let Some(path) = node.as_deref().and_then(module_path_from_node) {
            let name = format!("{path}.{field}");
            if taken.insert(name.clone()) {
                w.name = name;
                w.recovered_name = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_path_from_torch_scopes() {
        assert_eq!(module_path_from_node("/layer1/layer1.0/conv1/Conv").as_deref(), Some("layer1.0.conv1"));
        assert_eq!(module_path_from_node("/conv1/Conv").as_deref(), Some("conv1"));
        assert_eq!(module_path_from_node("/fc/Gemm").as_deref(), Some("fc"));
        assert_eq!(module_path_from_node("Conv_12"), None);
        assert_eq!(
            module_path_from_node("/backbone/body/layer2/layer2.0/downsample/downsample.1/Mul").as_deref(),
            Some("backbone.body.layer2.0.downsample.1")
        );
        assert_eq!(
            module_path_from_node("/backbone/fpn/inner_blocks.3/inner_blocks.3.0/Conv").as_deref(),
            Some("backbone.fpn.inner_blocks.3.0")
        );
    }
}
