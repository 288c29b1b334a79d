//! The compact ticket file: a safetensors container holding the ONNX graph with the sparse initializers taken
//! out, and for each of those a bitmap of its non-zero positions plus the non-zero values. An 80% ticket costs
//! 1/32 + 0.2 of its dense bytes (about 0.23). ONNX's own SparseTensorProto would keep ORT able to load the file,
//! but its int64 indices cost 8 bytes per kept weight (0.2·(4+8)/4 = 0.6 of dense), so it cannot reach the
//! one-third goal; `ticket unpack` restores a plain ONNX for ORT.
//!
//! The format and its reader live here, beside the ONNX reader, because importing a model reads either; the
//! writer is `export::compact`.
use super::{tensor, OnnxModel};
use crate::error::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// The `format` metadata of a compact file.
pub const FORMAT: &str = "ticket-compact";
/// The `version` metadata this reader understands and the writer writes.
pub const VERSION: &str = "1";
/// The safetensors key of the encoded graph skeleton.
pub const GRAPH_KEY: &str = "__onnx__";

/// The key of the non-zero bitmap of initializer `name`.
pub fn bits_key(name: &str) -> String {
    format!("bits/{name}")
}
/// The key of the non-zero values of initializer `name`.
pub fn values_key(name: &str) -> String {
    format!("values/{name}")
}

/// True when the file starts like a safetensors container (an 8-byte header length, then JSON).
pub fn looks_compact(bytes: &[u8]) -> bool {
    bytes.len() > 9 && bytes[8] == b'{'
}

/// Loads an ONNX model or a compact ticket file, whichever `path` holds.
pub fn load_onnx_or_compact(path: &Path) -> Result<OnnxModel> {
    let bytes = crate::fsio::read_limited(path, 16 << 30)?;
    if looks_compact(&bytes) {
        unpack(path, &bytes)
    } else {
        if bytes.len() as u64 > super::MAX_PROTO_BYTES {
            return Err(Error::input(path, "larger than 2 GiB: not a single-file ONNX model"));
        }
        OnnxModel::from_bytes(path, &bytes)
    }
}

/// Rebuilds the plain ONNX model held in a compact file.
pub fn unpack(path: &Path, bytes: &[u8]) -> Result<OnnxModel> {
    let bad = |msg: String| Error::input(path, msg);
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("neither ONNX nor a compact ticket file ({e})")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    if info.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(Error::setting_at(path, "masks", "a safetensors file, but not a compact ticket model (a mask file? use `masks`)"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_safetensors_file_of_another_format_is_refused_by_name() {
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        let bytes = safetensors::serialize(Vec::<(&str, safetensors::tensor::TensorView)>::new(), Some(meta)).unwrap();
        assert!(looks_compact(&bytes) && !looks_compact(b"\x08\x07\x12"));
        let e = unpack(Path::new("m.safetensors"), &bytes).unwrap_err().to_string();
        assert!(e.contains("m.safetensors") && e.contains("not a compact ticket model"), "{e}");
        assert_eq!((bits_key("w"), values_key("w")), ("bits/w".to_string(), "values/w".to_string()));
    }
}
