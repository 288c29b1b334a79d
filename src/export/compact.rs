//! Writes the compact ticket file (the format and its reader: `onnx::compact`): the ONNX graph with the sparse
//! initializers taken out, and for each of those a bitmap of its non-zero positions plus the non-zero values.
use crate::error::{Context, Error, Result};
use crate::onnx::compact::{bits_key, values_key, Packed, FORMAT, GRAPH_KEY, VERSION};
use crate::onnx::{external, proto::ModelProto, tensor, OnnxModel};
use prost::Message;
use safetensors::{tensor::TensorView, Dtype};
use std::collections::HashMap;
use std::path::Path;

#[derive(Clone, Debug, serde::Serialize)]
pub struct PackReport {
    pub packed_tensors: usize,
    pub compact_bytes: u64,
    /// Bytes of the graph skeleton (nodes, attributes, the initializers left dense) inside the compact file.
    pub graph_bytes: u64,
}

/// Writes `model` with initializer data replaced by `replace`, in compact form.
pub fn pack(model: &OnnxModel, replace: &HashMap<String, Vec<f32>>, out: &Path) -> Result<PackReport> {
    crate::fsio::ensure_distinct(out, &[&model.path])?;
    let mut proto: ModelProto = model.proto.clone();
    let graph = proto.graph.as_mut().expect("checked at load");
    let mut payload: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut float_data_names = Vec::new();
    for t in graph.initializer.iter_mut() {
        let name = t.name().to_string();
        // Inline external data: the compact form is one file.
        if external::is_external(t) {
            t.raw_data = Some(model.external[&name].clone());
            t.data_location = None;
            t.external_data.clear();
        }
        if !tensor::is_float(t) {
            // FLOAT16/BFLOAT16/DOUBLE weights stay dense, pruned in their own type: the packed values are f32.
            if let (Some(v), true) = (replace.get(&name), tensor::is_weight_float(t)) {
                tensor::set_f32_values(t, v);
            }
            continue;
        }
        // A tensor read packed and not replaced is written as it was read, without a dense copy.
        let own = model.packed.get(&name).filter(|_| !replace.contains_key(&name));
        let packed = match own {
            Some(p) => std::borrow::Cow::Borrowed(&**p),
            None => {
                let values = match replace.get(&name) {
                    Some(v) => std::borrow::Cow::Borrowed(&v[..]),
                    None => model.f32_values(t)?.into(),
                };
                let p = Packed::from_dense(&values);
                // Pack only where the bitmap plus the kept values is smaller than the dense tensor.
                if !Packed::smaller_than_dense(p.len, p.values.len()) {
                    if replace.contains_key(&name) || model.packed.contains_key(&name) {
                        if model.packed.get(&name).is_some_and(|p| !p.float_data) {
                            t.raw_data = Some(Vec::new().into());
                        }
                        tensor::set_f32_values(t, &values);
                    }
                    continue;
                }
                std::borrow::Cow::Owned(p)
            }
        };
        if model.packed.get(&name).map_or(t.raw_data.is_none(), |p| p.float_data) {
            float_data_names.push(name.clone());
        }
        t.raw_data = None;
        t.float_data.clear();
        let kept = tensor::f32_to_le_bytes(&packed.values);
        payload.push((bits_key(&name), Dtype::U8, vec![packed.bits.len()], packed.bits.clone()));
        payload.push((values_key(&name), Dtype::F32, vec![packed.values.len()], kept));
    }
    let graph_bytes = proto.encode_to_vec();
    let graph_len = graph_bytes.len() as u64;
    let packed_tensors = payload.len() / 2;
    payload.push((GRAPH_KEY.to_string(), Dtype::U8, vec![graph_bytes.len()], graph_bytes));
    let views =
        payload.iter().map(|(k, d, s, b)| Ok((k.as_str(), TensorView::new(*d, s.clone(), b).at(out)?))).collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("version".to_string(), VERSION.to_string()),
        ("float_data".to_string(), serde_json::to_string(&float_data_names).expect("strings serialise")),
    ]);
    let bytes = safetensors::serialize(views, Some(meta)).at(out)?;
    crate::fsio::write_atomic(out, &bytes)?;
    Ok(PackReport { packed_tensors, compact_bytes: bytes.len() as u64, graph_bytes: graph_len })
}

/// `ticket unpack`'s report: the plain ONNX written and its size.
#[derive(serde::Serialize)]
pub struct Unpacked {
    pub output: std::path::PathBuf,
    pub bytes: u64,
}

/// A compact ticket file turned back into a plain ONNX model at `output`.
pub fn unpack_file(compact: &Path, output: &Path) -> Result<Unpacked> {
    let bytes = crate::fsio::read_limited(compact, 16 << 30)?;
    if !crate::onnx::compact::looks_compact(&bytes) {
        return Err(Error::input(compact, "not a compact ticket file"));
    }
    let model = crate::onnx::compact::unpack(compact, &bytes)?;
    let saved = model.save_with(output, &Default::default())?;
    Ok(Unpacked { output: output.to_path_buf(), bytes: saved.total() })
}
