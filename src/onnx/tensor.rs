//! Initializer data ↔ f32 values. The float types a weight can have (FLOAT, FLOAT16, BFLOAT16, DOUBLE) are
//! read as f32 — exact for the 16-bit types, the nearest f32 for DOUBLE — so that magnitudes rank across types.
//! Writing back is exact in the tensor's own type: an element whose value did not change keeps its original
//! bytes, a pruned one becomes +0 of that type, and only a value that really changed (training) is rounded to
//! the type. Data may be raw little-endian bytes (what torch writes) or the typed fields (`float_data`,
//! `int32_data` holding 16-bit floats, `double_data`), and a replacement keeps whichever form the tensor had.
use super::proto::{tensor_proto::DataType, TensorProto};
use half::{bf16, f16};

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

/// The float types a weight may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatKind {
    F32,
    F16,
    Bf16,
    F64,
}

impl FloatKind {
    pub fn of(data_type: i32) -> Option<FloatKind> {
        match DataType::try_from(data_type).ok()? {
            DataType::Float => Some(FloatKind::F32),
            DataType::Float16 => Some(FloatKind::F16),
            DataType::Bfloat16 => Some(FloatKind::Bf16),
            DataType::Double => Some(FloatKind::F64),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            FloatKind::F32 => 4,
            FloatKind::F16 | FloatKind::Bf16 => 2,
            FloatKind::F64 => 8,
        }
    }

    fn decode(self, b: &[u8]) -> f32 {
        match self {
            FloatKind::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            FloatKind::F16 => f16::from_le_bytes([b[0], b[1]]).to_f32(),
            FloatKind::Bf16 => bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            FloatKind::F64 => f64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as f32,
        }
    }

    fn encode(self, v: f32, out: &mut Vec<u8>) {
        match self {
            FloatKind::F32 => out.extend_from_slice(&v.to_le_bytes()),
            FloatKind::F16 => out.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
            FloatKind::Bf16 => out.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
            FloatKind::F64 => out.extend_from_slice(&(v as f64).to_le_bytes()),
        }
    }
}

/// FLOAT (f32) only: what the compact form packs.
pub fn is_float(t: &TensorProto) -> bool {
    t.data_type() == DataType::Float as i32
}

/// Any float type a weight may have (FLOAT, FLOAT16, BFLOAT16, DOUBLE).
pub fn is_weight_float(t: &TensorProto) -> bool {
    FloatKind::of(t.data_type()).is_some()
}

/// The tensor's elements as little-endian bytes of its own type, from `raw` (its raw bytes, inline or
/// external) or from its typed field.
fn own_bytes(t: &TensorProto, raw: Option<&[u8]>, kind: FloatKind) -> Result<Vec<u8>, String> {
    let n = numel(t)?;
    if let Some(bytes) = raw {
        let want = n.checked_mul(kind.size()).ok_or("shape overflows")?;
        if bytes.len() != want {
            return Err(format!("raw data has {} bytes, shape needs {want}", bytes.len()));
        }
        return Ok(bytes.to_vec());
    }
    let (have, field) = match kind {
        FloatKind::F32 => (t.float_data.len(), "float_data"),
        FloatKind::F16 | FloatKind::Bf16 => (t.int32_data.len(), "int32_data"),
        FloatKind::F64 => (t.double_data.len(), "double_data"),
    };
    if have != n {
        return Err(format!("{field} has {have} values, shape needs {n}"));
    }
    let mut out = Vec::with_capacity(n * kind.size());
    match kind {
        FloatKind::F32 => t.float_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        // 16-bit floats are stored one per int32, in the low 16 bits.
        FloatKind::F16 | FloatKind::Bf16 => t.int32_data.iter().for_each(|v| out.extend_from_slice(&(*v as u16).to_le_bytes())),
        FloatKind::F64 => t.double_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
    }
    Ok(out)
}

fn kind_of(t: &TensorProto) -> Result<FloatKind, String> {
    FloatKind::of(t.data_type())
        .ok_or_else(|| format!("data type {} is not a float type (FLOAT, FLOAT16, BFLOAT16, DOUBLE)", t.data_type()))
}

/// The values of a float tensor as f32. `raw` is its raw bytes (inline or external) when it has them.
pub fn f32_values(t: &TensorProto, raw: Option<&[u8]>) -> Result<Vec<f32>, String> {
    let kind = kind_of(t)?;
    if kind == FloatKind::F32 && raw.is_none() && t.float_data.len() == numel(t)? {
        return Ok(t.float_data.clone());
    }
    Ok(own_bytes(t, raw, kind)?.chunks_exact(kind.size()).map(|c| kind.decode(c)).collect())
}

/// `v` as little-endian bytes of the tensor's type, keeping the original bytes (`original`, as [`f32_values`]
/// read them) of every element whose value is unchanged, so a DOUBLE weight that was not pruned is not rounded.
/// When the tensor's data no longer matches `v` (a shape that changed), every value is encoded afresh.
pub fn encode_like(t: &TensorProto, original: Option<&[u8]>, v: &[f32]) -> Vec<u8> {
    let kind = FloatKind::of(t.data_type()).unwrap_or(FloatKind::F32);
    let old = own_bytes(t, original, kind).ok().filter(|o| o.len() == v.len() * kind.size());
    let mut out = Vec::with_capacity(v.len() * kind.size());
    match old {
        Some(old) => {
            for (x, o) in v.iter().zip(old.chunks_exact(kind.size())) {
                if kind.decode(o).to_bits() == x.to_bits() {
                    out.extend_from_slice(o);
                } else {
                    kind.encode(*x, &mut out);
                }
            }
        }
        None => v.iter().for_each(|x| kind.encode(*x, &mut out)),
    }
    out
}

pub fn f32_to_le_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Replaces an inline float tensor's values in its own type (FLOAT for a tensor of any other type, as before
/// there were other float types), keeping its representation (raw or typed field).
pub fn set_f32_values(t: &mut TensorProto, v: &[f32]) {
    let kind = FloatKind::of(t.data_type()).unwrap_or(FloatKind::F32);
    let bytes = encode_like(t, t.raw_data.as_deref(), v);
    if t.raw_data.is_some() {
        t.raw_data = Some(bytes.into());
        return;
    }
    match kind {
        FloatKind::F32 => t.float_data = v.to_vec(),
        FloatKind::F16 | FloatKind::Bf16 => t.int32_data = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as i32).collect(),
        FloatKind::F64 => t.double_data = bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
    }
}
