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

/// `/backbone/body/layer1/layer1.0/conv1/Conv` → `backbone.body.layer1.0.conv1`. Scopes repeat their parent's
/// path for list items (`layer1`, then `layer1.0`), so a scope that extends the path replaces it.
pub fn module_path_from_node(node_name: &str) -> Option<String> {
    let parts: Vec<&str> = node_name.trim_start_matches('/').split('/').collect();
    if parts.len() < 2 {
        return None;
    }
    let mut path = String::new();
    for seg in &parts[..parts.len() - 1] {
        if seg.is_empty() {
            return None;
        }
        if path.is_empty() {
            path = seg.to_string();
        } else if seg.starts_with(&format!("{path}.")) {
            path = seg.to_string();
        } else {
            path = format!("{path}.{seg}");
        }
    }
    Some(path)
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
    }
}
