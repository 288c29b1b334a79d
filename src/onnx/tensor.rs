//! Initializer data ↔ f32 values. Only FLOAT tensors are pruned; their data may be raw little-endian bytes
//! (what torch writes) or the `float_data` field (what hand-built models often use), and a replacement keeps
//! whichever form the tensor had.
use super::proto::{tensor_proto::DataType, TensorProto};

pub fn dims(t: &TensorProto) -> Result<Vec<usize>, String> {
    t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}"))).collect()
}

pub fn numel(t: &TensorProto) -> Result<usize, String> {
    dims(t)?.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| "shape overflows".to_string())
}

pub fn elem_size(data_type: i32) -> Option<usize> {
    use DataType::*;
    Some(match DataType::try_from(data_type).ok()? {
        Float | Int32 | Uint32 => 4,
        Double | Int64 | Uint64 | Complex64 => 8,
        Float16 | Bfloat16 | Int16 | Uint16 => 2,
        Int8 | Uint8 | Bool | Float8e4m3fn | Float8e4m3fnuz | Float8e5m2 | Float8e5m2fnuz => 1,
        Complex128 => 16,
        _ => return None,
    })
}

pub fn byte_len(t: &TensorProto) -> Result<u64, String> {
    let size = elem_size(t.data_type()).ok_or_else(|| format!("data type {} has no fixed element size", t.data_type()))?;
    Ok(numel(t)? as u64 * size as u64)
}

pub fn is_float(t: &TensorProto) -> bool {
    t.data_type() == DataType::Float as i32
}

/// The values of a FLOAT tensor. `raw` is its raw bytes (inline or external) when it has them.
pub fn f32_values(t: &TensorProto, raw: Option<&[u8]>) -> Result<Vec<f32>, String> {
    if !is_float(t) {
        return Err(format!("data type {} is not FLOAT", t.data_type()));
    }
    let n = numel(t)?;
    match raw {
        Some(bytes) => {
            if bytes.len() != n * 4 {
                return Err(format!("raw data has {} bytes, shape needs {}", bytes.len(), n * 4));
            }
            Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        None if t.float_data.len() == n => Ok(t.float_data.clone()),
        None => Err(format!("float_data has {} values, shape needs {n}", t.float_data.len())),
    }
}

pub fn f32_to_le_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Replaces an inline FLOAT tensor's values, keeping its representation.
pub fn set_f32_values(t: &mut TensorProto, v: &[f32]) {
    if t.raw_data.is_some() {
        t.raw_data = Some(f32_to_le_bytes(v).into());
    } else {
        t.float_data = v.to_vec();
    }
}
