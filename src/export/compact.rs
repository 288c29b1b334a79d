//! The compact ticket file: a safetensors container holding the ONNX graph with the sparse initializers taken
//! out, and for each of those a bitmap of its non-zero positions plus the non-zero values. An 80% ticket costs
//! 1/32 + 0.2 of its dense bytes (about 0.23). ONNX's own SparseTensorProto would keep ORT able to load the file,
//! but its int64 indices cost 8 bytes per kept weight (0.2·(4+8)/4 = 0.6 of dense), so it cannot reach the
//! one-third goal; `ticket unpack` restores a plain ONNX for ORT.
use crate::error::{Context, Error, Result};
use crate::onnx::{external, proto::ModelProto, tensor, OnnxModel};
use prost::Message;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

pub const FORMAT: &str = "ticket-compact";
const VERSION: &str = "1";
const GRAPH_KEY: &str = "__onnx__";

fn bits_key(name: &str) -> String {
    format!("bits/{name}")
}
fn values_key(name: &str) -> String {
    format!("values/{name}")
}

/// True when the file starts like a safetensors container (an 8-byte header length, then JSON).
pub fn looks_compact(bytes: &[u8]) -> bool {
    bytes.len() > 9 && bytes[8] == b'{'
}

/// Loads an ONNX model or a compact ticket file.
pub fn load_any(path: &Path) -> Result<OnnxModel> {
    let bytes = crate::fsio::read_limited(path, 16 << 30)?;
    if looks_compact(&bytes) {
        unpack(path, &bytes)
    } else {
        if bytes.len() as u64 > crate::onnx::MAX_PROTO_BYTES {
            return Err(Error::input(path, "larger than 2 GiB: not a single-file ONNX model"));
        }
        OnnxModel::from_bytes(path, &bytes)
    }
}

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
        let values = match replace.get(&name) {
            Some(v) => v.clone(),
            None => tensor::f32_values(t, t.raw_data.as_deref()).with_context(&model.path, || format!("initializer '{name}'"))?,
        };
        let nnz = values.iter().filter(|v| v.to_bits() != 0).count();
        // Pack only where the bitmap plus the kept values is smaller than the dense tensor.
        if values.len().div_ceil(8) + 4 * nnz >= 4 * values.len() {
            if replace.contains_key(&name) {
                tensor::set_f32_values(t, &values);
            }
            continue;
        }
        let mut bits = vec![0u8; values.len().div_ceil(8)];
        let mut kept = Vec::with_capacity(nnz * 4);
        for (i, v) in values.iter().enumerate() {
            // -0.0 is kept as a value so that unpacking is bit-exact.
            if v.to_bits() != 0 {
                bits[i / 8] |= 1 << (i % 8);
                kept.extend_from_slice(&v.to_le_bytes());
            }
        }
        if t.raw_data.is_none() {
            float_data_names.push(name.clone());
        }
        t.raw_data = None;
        t.float_data.clear();
        payload.push((bits_key(&name), Dtype::U8, vec![bits.len()], bits));
        payload.push((values_key(&name), Dtype::F32, vec![nnz], kept));
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

/// Rebuilds the plain ONNX model held in a compact file.
pub fn unpack(path: &Path, bytes: &[u8]) -> Result<OnnxModel> {
    let bad = |msg: String| Error::input(path, msg);
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("neither ONNX nor a compact ticket file ({e})")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    if info.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad("a safetensors file, but not a compact ticket model (a mask file? use --masks)".into()));
    }
    if info.get("version").map(String::as_str) != Some(VERSION) {
        return Err(bad(format!("compact format version {:?} is not supported", info.get("version"))));
    }
    let float_data: Vec<String> = serde_json::from_str(info.get("float_data").map(String::as_str).unwrap_or("[]"))
        .map_err(|e| bad(format!("bad float_data metadata: {e}")))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let graph = st.tensor(GRAPH_KEY).map_err(|_| bad("the compact file has no ONNX graph".into()))?;
    // The graph's packed initializers have no data until they are filled in: the model checks run after.
    let mut proto = OnnxModel::decode_proto(path, graph.data())?;
    let g = proto.graph.as_mut().expect("checked at decode");
    for t in g.initializer.iter_mut() {
        let name = t.name().to_string();
        let Ok(bits) = st.tensor(&bits_key(&name)) else { continue };
        let vals = st.tensor(&values_key(&name)).map_err(|_| bad(format!("tensor '{name}' has a bitmap but no values")))?;
        let n = tensor::numel(t).map_err(|e| bad(format!("initializer '{name}': {e}")))?;
        if !tensor::is_float(t) || bits.data().len() != n.div_ceil(8) || vals.dtype() != Dtype::F32 || vals.data().len() % 4 != 0 {
            return Err(bad(format!("tensor '{name}': packed data does not match its shape")));
        }
        let mut kept = vals.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let mut dense = vec![0f32; n];
        for (i, d) in dense.iter_mut().enumerate() {
            if bits.data()[i / 8] >> (i % 8) & 1 == 1 {
                *d = kept.next().ok_or_else(|| bad(format!("tensor '{name}': fewer values than set bits")))?;
            }
        }
        if kept.next().is_some() {
            return Err(bad(format!("tensor '{name}': more values than set bits")));
        }
        if float_data.contains(&name) {
            t.float_data = dense;
        } else {
            t.raw_data = Some(tensor::f32_to_le_bytes(&dense).into());
        }
    }
    OnnxModel::from_proto(path, proto)
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
    if !looks_compact(&bytes) {
        return Err(Error::input(compact, "not a compact ticket file"));
    }
    let model = unpack(compact, &bytes)?;
    let saved = model.save_with(output, &Default::default())?;
    Ok(Unpacked { output: output.to_path_buf(), bytes: saved.total() })
}
