//! Pruning masks: one 0/1 tensor per parameter, kept beside the weights and stored as safetensors (U8), so
//! that numpy/torch users can read them with the `safetensors` package.
use crate::error::{Context, Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const FORMAT: &str = "ticket-masks";
/// Mask files are small (one byte per weight); anything past this is not a mask file for a detector.
const MAX_MASK_FILE_BYTES: u64 = 4 << 30;

#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    pub shape: Vec<usize>,
    /// 1 keeps the weight, 0 prunes it.
    pub keep: Vec<u8>,
}

impl Mask {
    pub fn ones(shape: &[usize]) -> Self {
        Mask { shape: shape.to_vec(), keep: vec![1; shape.iter().product()] }
    }

    pub fn kept(&self) -> usize {
        self.keep.iter().map(|&k| k as usize).sum()
    }

    pub fn len(&self) -> usize {
        self.keep.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keep.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Masks {
    pub map: BTreeMap<String, Mask>,
}

impl Masks {
    pub fn merge(&mut self, other: Masks) {
        self.map.extend(other.map);
    }

    pub fn kept(&self) -> usize {
        self.map.values().map(Mask::kept).sum()
    }

    pub fn total(&self) -> usize {
        self.map.values().map(Mask::len).sum()
    }

    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(path, &crate::fsio::read_limited(path, MAX_MASK_FILE_BYTES)?)
    }

    /// Reads the bytes of a mask file (`path` names it in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::input(path, format!("not a safetensors mask file ({e})")))?;
        let mut map = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::U8 {
                return Err(Error::input(path, format!("mask '{name}' has dtype {:?}, expected U8 (0/1)", view.dtype())));
            }
            let keep = view.data().to_vec();
            if let Some(i) = keep.iter().position(|&k| k > 1) {
                return Err(Error::input(path, format!("mask '{name}' has value {} at index {i}; masks hold only 0 and 1", keep[i])));
            }
            map.insert(name, Mask { shape: view.shape().to_vec(), keep });
        }
        if map.is_empty() {
            return Err(Error::input(path, "the mask file holds no masks"));
        }
        Ok(Masks { map })
    }

    pub fn save(&self, path: &Path, meta: &[(&str, String)]) -> Result<u64> {
        let views = self
            .map
            .iter()
            .map(|(name, m)| Ok((name.as_str(), TensorView::new(Dtype::U8, m.shape.clone(), &m.keep).at(path)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut info: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        info.insert("format".into(), FORMAT.into());
        let bytes = safetensors::serialize(views, Some(info)).at(path)?;
        crate::fsio::write_atomic(path, &bytes)?;
        Ok(bytes.len() as u64)
    }
}
