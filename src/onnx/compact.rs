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
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

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

/// A tensor as the compact file stores it: a bitmap of its non-zero positions (bit `i % 8` of byte `i / 8`)
/// and the non-zero values in order. -0.0 is kept as a value, so unpacking is bit-exact.
#[derive(Clone, Debug, PartialEq)]
pub struct Packed {
    pub len: usize,
    pub bits: Vec<u8>,
    pub values: Vec<f32>,
    /// The ONNX tensor held its data in `float_data` rather than `raw_data` (restored as it was).
    pub float_data: bool,
}

impl Packed {
    /// Checks that `bits` covers `len` positions and sets exactly as many of them as there are `values`.
    pub fn new(len: usize, bits: Vec<u8>, values: Vec<f32>, float_data: bool) -> std::result::Result<Packed, String> {
        check_bitmap(len, &bits, values.len())?;
        Ok(Packed { len, bits, values, float_data })
    }

    /// The positions of `values` that are not bit-for-bit zero, and those values.
    pub fn from_dense(values: &[f32]) -> Packed {
        let mut bits = vec![0u8; values.len().div_ceil(8)];
        let mut kept = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if v.to_bits() != 0 {
                bits[i / 8] |= 1 << (i % 8);
                kept.push(*v);
            }
        }
        Packed { len: values.len(), bits, values: kept, float_data: false }
    }

    /// Whether the bitmap plus `nnz` kept values is smaller than `len` dense values.
    pub fn smaller_than_dense(len: usize, nnz: usize) -> bool {
        len.div_ceil(8) + 4 * nnz < 4 * len
    }

    /// The set positions, in order (one per value).
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        set_positions(&self.bits, self.len)
    }

    pub fn dense(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.len];
        for (i, v) in self.positions().zip(&self.values) {
            out[i] = *v;
        }
        out
    }

    /// Values that are not zero (a kept -0.0 is zero).
    pub fn nonzeros(&self) -> usize {
        self.values.iter().filter(|v| **v != 0.0).count()
    }

    /// Every value at position `i` multiplied by `scale[i / per_row]` (a per-output-channel scale).
    pub fn scale_rows(&self, per_row: usize, scale: &[f32]) -> Packed {
        let values = self.positions().zip(&self.values).map(|(i, v)| v * scale[i / per_row.max(1)]).collect();
        Packed { values, ..self.clone() }
    }
}

/// Whether `bits` covers `len` positions and sets exactly `values` of them: what every reader of a packed tensor
/// (this file's, the sparse ops') checks before walking it.
pub fn check_bitmap(len: usize, bits: &[u8], values: usize) -> std::result::Result<(), &'static str> {
    if bits.len() != len.div_ceil(8) {
        return Err("packed data does not match its shape");
    }
    match count_set(bits, len).cmp(&values) {
        std::cmp::Ordering::Greater => Err("fewer values than set bits"),
        std::cmp::Ordering::Less => Err("more values than set bits"),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// How many of the first `len` bits of a bitmap are set (bits past `len` in the last byte are not counted).
pub fn count_set(bits: &[u8], len: usize) -> usize {
    let (full, rest) = (len / 8, len % 8);
    let tail = bits.get(full).filter(|_| rest > 0).map_or(0, |b| (b & ((1u8 << rest) - 1)).count_ones());
    bits[..full.min(bits.len())].iter().map(|b| b.count_ones() as usize).sum::<usize>() + tail as usize
}

/// The positions below `len` whose bits are set, in order (a byte at a time).
pub fn set_positions(bits: &[u8], len: usize) -> impl Iterator<Item = usize> + '_ {
    bits.iter()
        .enumerate()
        .flat_map(move |(j, &b)| {
            let mut b = b;
            std::iter::from_fn(move || {
                (b != 0).then(|| {
                    let i = j * 8 + b.trailing_zeros() as usize;
                    b &= b - 1;
                    i
                })
            })
        })
        .take_while(move |&i| i < len)
}

/// Loads an ONNX model or a compact ticket file, whichever `path` holds. A compact file's packed tensors stay
/// packed (`OnnxModel::packed`) until something needs them dense.
pub fn load_onnx_or_compact(path: &Path) -> Result<OnnxModel> {
    let bytes = crate::fsio::read_limited(path, 16 << 30)?;
    if looks_compact(&bytes) {
        read(path, &bytes)
    } else {
        if bytes.len() as u64 > super::MAX_PROTO_BYTES {
            return Err(Error::input(path, "larger than 2 GiB: not a single-file ONNX model"));
        }
        OnnxModel::from_bytes(path, &bytes)
    }
}

/// Rebuilds the plain ONNX model held in a compact file.
pub fn unpack(path: &Path, bytes: &[u8]) -> Result<OnnxModel> {
    let mut model = read(path, bytes)?;
    model.materialise();
    Ok(model)
}

/// Reads a compact file, its packed tensors kept packed (checked against their shapes).
pub fn read(path: &Path, bytes: &[u8]) -> Result<OnnxModel> {
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
    // The graph's packed initializers have no data: the model checks skip their length, checked here instead.
    let proto = OnnxModel::decode_proto(path, graph.data())?;
    let mut packed = HashMap::new();
    for t in &proto.graph.as_ref().expect("checked at decode").initializer {
        let name = t.name().to_string();
        let Ok(bits) = st.tensor(&bits_key(&name)) else { continue };
        let vals = st.tensor(&values_key(&name)).map_err(|_| bad(format!("tensor '{name}' has a bitmap but no values")))?;
        let n = tensor::numel(t).map_err(|e| bad(format!("initializer '{name}': {e}")))?;
        if !tensor::is_float(t) || vals.dtype() != Dtype::F32 || vals.data().len() % 4 != 0 {
            return Err(bad(format!("tensor '{name}': packed data does not match its shape")));
        }
        let kept = vals.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let p = Packed::new(n, bits.data().to_vec(), kept, float_data.contains(&name)).map_err(|e| bad(format!("tensor '{name}': {e}")))?;
        packed.insert(name, Arc::new(p));
    }
    OnnxModel::from_proto_packed(path, proto, packed)
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

    #[test]
    fn packed_tensors_check_their_bits_and_read_back_dense() {
        let dense = [0.0, 2.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 3.0, -0.0];
        let p = Packed::from_dense(&dense);
        // -0.0 is kept as a value, so the dense form comes back bit for bit.
        assert_eq!((p.bits.clone(), p.values.len()), (vec![0b0001_0010, 0b0000_0110], 4));
        assert_eq!(p.positions().collect::<Vec<_>>(), vec![1, 4, 9, 10]);
        assert_eq!(p.dense().iter().map(|v| v.to_bits()).collect::<Vec<_>>(), dense.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert_eq!((p.nonzeros(), p.scale_rows(5, &[10.0, 1.0, 2.0]).values), (3, vec![20.0, -10.0, 3.0, -0.0]));
        // A bit past the tensor's end is not a position: the values must match the bits inside it.
        let trailing = vec![0b0001_0010, 0b1000_0010];
        assert_eq!(count_set(&trailing, 11), 3);
        assert_eq!(set_positions(&trailing, 11).collect::<Vec<_>>(), vec![1, 4, 9]);
        assert!(Packed::new(11, trailing, vec![2.0, -1.0, 3.0], false).is_ok());
        assert_eq!(Packed::new(11, vec![0b11, 0], vec![1.0], false).unwrap_err(), "fewer values than set bits");
        assert_eq!(Packed::new(11, vec![0b1, 0], vec![1.0, 2.0], false).unwrap_err(), "more values than set bits");
        assert_eq!(Packed::new(11, vec![0b1], vec![1.0], false).unwrap_err(), "packed data does not match its shape");
    }
}
