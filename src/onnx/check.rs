//! What a model must satisfy before the tool works on it: the checks that make ONNX Runtime reject a graph,
//! done here so that `inspect`, `prune` and `check` refuse such a model with the reason (exit 2) instead of
//! pruning it into an output nobody can load — or panicking on a tensor named twice.
use super::proto::{tensor_proto::DataType, GraphProto, TensorProto};
use super::{external, tensor};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Initializers: unique names, shapes that exist, data as long as the shape says. Nodes of the main graph:
/// every input provided, no output defined twice, no cycle, Conv-like ops with a float weight.
pub fn model(path: &Path, graph: &GraphProto) -> Result<()> {
    model_with(path, graph, &|_| false)
}

/// [`model`] for a graph whose initializers named by `packed` hold their data elsewhere (a compact file's).
pub fn model_with(path: &Path, graph: &GraphProto, packed: &dyn Fn(&str) -> bool) -> Result<()> {
    let fail = |msg: String| Err(Error::input(path, msg));
    let mut names = HashSet::new();
    for t in &graph.initializer {
        if !names.insert(t.name()) {
            return fail(format!("initializer '{}' is defined twice (initializer names must be unique in ONNX)", t.name()));
        }
        if let Err(e) = data_length(t).or_else(|e| if packed(t.name()) { Ok(()) } else { Err(e) }) {
            return fail(format!("initializer '{}': {e}", t.name()));
        }
    }

    let mut available: HashSet<&str> = names.clone();
    available.extend(graph.input.iter().map(|i| i.name()));
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            if available.contains(out.as_str()) || producer.insert(out, i).is_some() {
                return fail(format!("{} defines '{out}', which is already defined", describe(node)));
            }
        }
    }
    let inits: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name(), t)).collect();
    for node in &graph.node {
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            if !available.contains(input.as_str()) && !producer.contains_key(input.as_str()) {
                return fail(format!("{} reads '{input}', which no node, graph input or initializer provides", describe(node)));
            }
        }
        if matches!(node.op_type(), "Conv" | "ConvTranspose") {
            let w = node.input.get(1).filter(|w| !w.is_empty());
            let Some(w) = w else {
                return fail(format!("{} has no weight input", describe(node)));
            };
            if let Some(t) = inits.get(w.as_str()) {
                if !tensor::is_weight_float(t) {
                    let ty =
                        DataType::try_from(t.data_type()).map_or_else(|_| t.data_type().to_string(), |d| d.as_str_name().to_lowercase());
                    return fail(format!("{} has weight '{w}' of type {ty}; a convolution's weight is a float tensor", describe(node)));
                }
            }
        }
    }

    // Kahn's algorithm over the main graph: a node is ready once every node it reads from is done.
    let mut pending: Vec<usize> = graph.node.iter().map(|n| n.input.iter().filter(|i| producer.contains_key(i.as_str())).count()).collect();
    let mut consumers: HashMap<usize, Vec<usize>> = HashMap::new();
    for (j, node) in graph.node.iter().enumerate() {
        for i in node.input.iter().filter_map(|i| producer.get(i.as_str())) {
            consumers.entry(*i).or_default().push(j);
        }
    }
    let mut ready: Vec<usize> = (0..graph.node.len()).filter(|&j| pending[j] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &j in consumers.get(&i).map(Vec::as_slice).unwrap_or_default() {
            pending[j] -= 1;
            if pending[j] == 0 {
                ready.push(j);
            }
        }
    }
    if done < graph.node.len() {
        let stuck = pending.iter().position(|&p| p > 0).expect("some node is not done");
        return fail(format!("the graph has a cycle: {} depends on its own output", describe(&graph.node[stuck])));
    }
    Ok(())
}

fn describe(node: &super::proto::NodeProto) -> String {
    if node.name().is_empty() {
        format!("a {} node", node.op_type())
    } else {
        format!("{} node '{}'", node.op_type(), node.name())
    }
}

/// The data of an initializer holds as many elements as its shape: raw bytes, or the typed field the type
/// lives in. External data is checked when it is read; types without a fixed size (strings, 4-bit) are not.
fn data_length(t: &TensorProto) -> std::result::Result<(), String> {
    let n = tensor::numel(t)?;
    if external::is_external(t) {
        return Ok(());
    }
    let Some(size) = tensor::elem_size(t.data_type()) else { return Ok(()) };
    if let Some(raw) = &t.raw_data {
        let want = (n as u128) * size as u128;
        if raw.len() as u128 != want {
            return Err(format!("raw data has {} bytes, its shape {:?} needs {want}", raw.len(), t.dims));
        }
        return Ok(());
    }
    use DataType::*;
    let (have, field, per) = match DataType::try_from(t.data_type()).ok() {
        Some(Float) => (t.float_data.len(), "float_data", 1),
        Some(Complex64) => (t.float_data.len(), "float_data", 2),
        Some(Double) => (t.double_data.len(), "double_data", 1),
        Some(Complex128) => (t.double_data.len(), "double_data", 2),
        Some(Int64) => (t.int64_data.len(), "int64_data", 1),
        Some(Uint32 | Uint64) => (t.uint64_data.len(), "uint64_data", 1),
        _ => (t.int32_data.len(), "int32_data", 1),
    };
    let want = n as u128 * per;
    if have as u128 != want {
        return Err(format!("{field} has {have} values, its shape {:?} needs {want}", t.dims));
    }
    Ok(())
}
